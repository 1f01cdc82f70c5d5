"""Ctrl-C in the command-line entry points: the study's one line, not the Jupyter client's noise after it.

Ctrl-C in a terminal reaches the pipeline and the notebook's kernel at once. Depending on which of them
notices first, the Jupyter client (papermill → nbclient) may still log "Kernel died while waiting for execute
reply." while the interrupted run unwinds, and asyncio may report the abandoned cell task's ``DeadKernelError``
("Task exception was never retrieved" and a traceback) when that task is collected, as late as interpreter
exit. Both are expected consequences of the Ctrl-C, not errors, and whether they appear is a matter of timing.

:func:`quiet_client_logs_after_ctrl_c` drops the records of those loggers from the moment SIGINT arrives, so the
entry point's own message ("Interrupted (Ctrl-C): ...") is the only line. Until then nothing is filtered: a kernel
that dies in a normal run (killed for memory) is still reported.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Loggers that report the stopped kernel and its abandoned cell task (papermill passes its logger to nbclient).
CLIENT_LOGGERS = ("papermill", "nbclient", "traitlets", "asyncio")


class DropAfterCtrlC(logging.Filter):
    """Logger filter that passes every record until :attr:`pressed` is set (by the SIGINT handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.pressed = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pressed


@contextmanager
def quiet_client_logs_after_ctrl_c(loggers: tuple[str, ...] = CLIENT_LOGGERS) -> Iterator[DropAfterCtrlC | None]:
    """Within the block, SIGINT still raises :class:`KeyboardInterrupt` and also silences ``loggers`` from then on.

    After a Ctrl-C the filter stays on those loggers (the abandoned task's report can come at interpreter exit,
    after the block); without one it is removed on leaving. Where Python's own Ctrl-C handler is not installed
    (SIGINT ignored, as in a background job, or not the main thread) nothing is changed and ``None`` is yielded.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield None
        return
    drop = DropAfterCtrlC()

    def on_sigint(signum, frame):
        drop.pressed = True
        signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as without this handler

    for name in loggers:
        logging.getLogger(name).addFilter(drop)
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield drop
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if not drop.pressed:
            for name in loggers:
                logging.getLogger(name).removeFilter(drop)
