"""Progress bars (tqdm) for long loops: widgets in JupyterLab, text in a terminal.

Set ``TQDM_DISABLE=1`` (tqdm's own variable; the pipeline sets it for batch runs, whose reports keep the
per-epoch summary lines instead) to switch them off everywhere.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled when ``enabled`` is False or ``TQDM_DISABLE`` is set."""
    off = (not enabled) or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=off, **kwargs)
