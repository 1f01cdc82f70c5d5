"""A Jupyter kernel manager whose kernel does not write to the pipeline's console.

A kernel started by papermill inherits the console: it prints a startup warning on every run, and when a
study is stopped with Ctrl-C while a cell runs, its shutdown prints a long traceback after the pipeline's
one-line message. Everything a notebook shows (cell output, warnings, errors) reaches the executed notebook
through Jupyter messages, not the kernel's own streams, so those streams are discarded here.

On Linux the kernel is also tied to the process that starts it (``PR_SET_PDEATHSIG``): when that process is
killed — a Dask worker killed mid-training, say — the kernel dies with it instead of training on as an
orphan that keeps writing the checkpoints the retried run resumes from.
"""
from __future__ import annotations

import subprocess
import sys

from jupyter_client.manager import AsyncKernelManager


class QuietKernelManager(AsyncKernelManager):
    """:class:`jupyter_client.AsyncKernelManager` launching its kernel with stdout and stderr discarded
    (pass as ``kernel_manager_class`` to ``papermill.execute_notebook``)."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        if sys.platform.startswith("linux"):
            kw.setdefault("preexec_fn", _die_with_parent)
        await super()._async_launch_kernel(kernel_cmd, **kw)


def _die_with_parent() -> None:
    """In the kernel's process before exec: ask Linux to SIGKILL it when its parent dies."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
