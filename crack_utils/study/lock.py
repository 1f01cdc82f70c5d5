"""One pipeline per study: an exclusive lock on ``results/<name>/.lock`` while a pipeline drives the study.

A second pipeline on the same study would remove the first one's unfinished ``.tmp-*`` runs at its start and
then execute the same runs into the same folders. With the lock it stops at once, naming the holder (process,
host, start time). The lock is an ``flock`` on the file: the operating system releases it when the holding
process ends, however it ends, so a killed pipeline leaves no stale lock. The file itself stays (git-ignored);
its content only describes the last holder. On a cluster the lock is taken by the driving process (the
login node's ``python -m crack_utils.pipeline``), not by the workers.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from crack_utils.study.notebook_run import StudyError

LOCK_FILE = ".lock"


@contextmanager
def study_lock(results):
    """Hold the study folder ``results`` (created if missing) for the duration of the block; StudyError
    naming the holder when another process holds it.

    Where the lock cannot be taken at all (a filesystem without ``flock``, a lock file another user left
    unwritable), the study runs without it, with a warning: the lock protects against a mistake, it must
    not stop a study on a filesystem that cannot lock."""
    folder = Path(results)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        handle = open(path, "a+")
    except PermissionError:
        handle = open(path)  # someone else's file: lock it, do not describe ourselves in it
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"{folder} is being run by another pipeline ({_holder(handle)}): wait for it to finish "
                             "or stop it; two pipelines on one study would overwrite each other's runs") from None
        except OSError as err:
            warnings.warn(f"{path}: cannot lock ({err}); running without the one-pipeline-per-study check",
                          stacklevel=3)
        if handle.writable():
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
            handle.flush()
        yield path
    finally:
        handle.close()  # closing the file releases the flock


def _holder(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:  # read between the holder's truncate and write
        holder = {}
    if not holder:
        return "another process"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
