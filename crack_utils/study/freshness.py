"""When a finished run is up to date, so that rerunning a study skips it.

A run's **fingerprint** is what its result depends on:

* the notebook file (its bytes: any edit to a cell counts),
* the papermill parameters of the run (the config values it receives),
* the ``run_id`` of every upstream run it reads (a fresh id each time a run executes, so a re-executed
  upstream run makes its dependents rerun).

A run is **up to date** when its folder is complete (the pipeline renames ``.tmp-<run>`` to the final
folder only after success, so a folder with its executed notebook and ``run_metadata.json`` is complete)
and the fingerprint stored in its ``run_metadata.json`` equals the current one.

* the contents of files a parameter names (the data stage's ``EXCLUSIONS_FILE``).

A training also needs its checkpoints (``best.pt``) and the data stage its prepared arrays: git-ignored
files, absent in a fresh clone. They are needed only when a run that reads them has to execute (a new
training reads the prepared arrays, a new evaluation a training's checkpoint): then the run is executed
again to **restore** them, and when its result is the same as the committed one (:func:`same_result`: the
same manifest, the same per-epoch history) the committed run folder and its ``run_id`` are kept and only the
missing files are added, so nothing downstream of it reruns. A study committed part way (a training per
session) thus grows in a fresh clone without retraining what it holds.

Not part of the fingerprint: the contents of a data folder (``DATA_ROOT``, ``EXTRA_FOLDER``: rerun with
``--force data`` after changing the images), the code of ``crack_utils`` (a bug fix in a plotting helper must not retrain a
study), package versions and the machine. Each run's metadata records its commit, and the report lists
the commits its runs were made at, flagging a study whose runs come from more than one commit; after a
change to code that affects results, rerun with ``--force`` (all runs, or the named stages).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

METADATA = "run_metadata.json"


def new_run_id() -> str:
    """A fresh identifier for one execution of a run."""
    return uuid.uuid4().hex


def notebook_digest(path: str | Path) -> str:
    """SHA-256 of a notebook file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint(notebook_digest_: str, parameters: dict, upstream_ids: dict, inputs: dict | None = None) -> dict:
    """The JSON-comparable fingerprint of a run (see the module docstring). ``upstream_ids``:
    ``{upstream run name: its run_id}``; ``inputs``: ``{parameter: digest}`` of files a parameter names
    (e.g. the exclusions file), so an edit to their content counts."""
    content = {"notebook": notebook_digest_, "parameters": parameters, "upstream": upstream_ids}
    if inputs:
        content["inputs"] = inputs
    return json.loads(json.dumps(content, sort_keys=True, default=str))


def file_digest(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, None when it does not exist."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_metadata(folder: str | Path) -> dict | None:
    """``run_metadata.json`` of a finished run folder, or None when the folder is not a complete run."""
    path = Path(folder) / METADATA
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_id(folder: str | Path) -> str | None:
    """The ``run_id`` recorded in a finished run folder (None when missing: an older or incomplete run)."""
    meta = read_metadata(folder)
    return None if meta is None else meta.get("run_id")


#: Per stage, the file whose content identifies a run's result (:func:`same_result`).
IDENTITY = {"data": "manifest.csv", "train": "history.csv"}
#: Columns of the identity file that vary between identical executions (wall-clock times).
TIMING_COLUMNS = ("seconds", "epoch_seconds")


def same_result(stage: str, old: str | Path, new: str | Path) -> bool:
    """Whether a re-execution in ``new`` produced the result committed in ``old``: the stage's
    :data:`IDENTITY` file has the same content (its committed ``.xz`` copy counts; timing columns are
    ignored). False for stages without one or when a file is missing."""
    import io

    import pandas as pd

    from crack_utils.study.committed import table_bytes, table_exists

    name = IDENTITY.get(stage)
    if name is None or not (table_exists(Path(old) / name) and table_exists(Path(new) / name)):
        return False
    a, b = (pd.read_csv(io.BytesIO(table_bytes(Path(folder) / name))) for folder in (old, new))
    a, b = (t.drop(columns=[c for c in TIMING_COLUMNS if c in t.columns]) for t in (a, b))
    return a.shape == b.shape and list(a.columns) == list(b.columns) and a.equals(b)


def is_complete_with(folder: str | Path, notebook_name: str, current: dict) -> bool:
    """Whether ``folder`` holds a finished run (executed ``notebook_name`` and metadata) with the
    fingerprint ``current``, git-ignored outputs aside."""
    return is_up_to_date(folder, notebook_name, current, ())


def is_up_to_date(folder: str | Path, notebook_name: str, current: dict, required=()) -> bool:
    """Whether the finished run in ``folder`` (its executed ``notebook_name`` and metadata present) was
    made with the fingerprint ``current`` and the files ``required`` outside its folder (git-ignored outputs
    such as prepared arrays and checkpoints, absent in a fresh clone) exist. Runs without a stored
    fingerprint (made before fingerprints existed) are never up to date."""
    folder = Path(folder)
    meta = read_metadata(folder)
    return (meta is not None and (folder / notebook_name).is_file() and meta.get("run_id") is not None
            and meta.get("fingerprint") == current and all(Path(p).exists() for p in required))
