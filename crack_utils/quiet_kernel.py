"""A Jupyter kernel manager whose kernel does not write to the pipeline's console.

A kernel started by papermill inherits the console: it prints a startup warning on every run, and when a
study is stopped with Ctrl-C while a cell runs, its shutdown prints a long traceback after the pipeline's
one-line message. Everything a notebook shows (cell output, warnings, errors) reaches the executed notebook
through Jupyter messages, not the kernel's own streams, so those streams are discarded here.
"""
from __future__ import annotations

import subprocess

from jupyter_client.manager import AsyncKernelManager


class QuietKernelManager(AsyncKernelManager):
    """:class:`jupyter_client.AsyncKernelManager` launching its kernel with stdout and stderr discarded
    (pass as ``kernel_manager_class`` to ``papermill.execute_notebook``)."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        await super()._async_launch_kernel(kernel_cmd, **kw)
