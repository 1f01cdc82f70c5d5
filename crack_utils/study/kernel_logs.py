"""Two log records that only restate a stopped notebook kernel, dropped so a study's messages stay readable.

While papermill executes a notebook, nbclient owns SIGINT: Ctrl-C makes it shut the kernel down, and whether
the running cell's ``KeyboardInterrupt`` or the kernel's death is noticed first is a matter of timing. In the
second case nbclient logs "Kernel died while waiting for execute reply." (through papermill's logger) and the
abandoned cell task's ``DeadKernelError`` is reported by asyncio ("Task exception was never retrieved" and a
traceback) when the task is collected, as late as interpreter exit — after the pipeline's own one-line
"Interrupted (Ctrl-C)" message.

Neither record adds anything: a kernel that dies during a normal run (killed for memory, say) is reported by
:func:`crack_utils.study.notebook_run.execute` as a study error naming the notebook and the folder it left.
:func:`drop_stopped_kernel_records` filters exactly these two records out of the ``papermill`` and ``asyncio``
loggers; every other record of theirs passes.
"""
from __future__ import annotations

import logging

KERNEL_DIED = "Kernel died while waiting for execute reply."


class StoppedKernelRecords(logging.Filter):
    """Logger filter rejecting nbclient's "Kernel died while waiting" record and asyncio's report of an
    unretrieved ``DeadKernelError``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "papermill" and record.getMessage() == KERNEL_DIED:
            return False
        if record.name == "asyncio" and record.exc_info and type(record.exc_info[1]).__name__ == "DeadKernelError":
            return False
        return True


#: The one instance installed (tests remove it to check who installs it).
STOPPED_KERNEL_RECORDS = StoppedKernelRecords()


def drop_stopped_kernel_records() -> None:
    """Install the filter on the ``papermill`` and ``asyncio`` loggers of this process (idempotent)."""
    for name in ("papermill", "asyncio"):
        logger = logging.getLogger(name)
        if STOPPED_KERNEL_RECORDS not in logger.filters:
            logger.addFilter(STOPPED_KERNEL_RECORDS)
