"""Executing one notebook run of a study: papermill into an atomic run folder with ``run_metadata.json``.

A run is executed in ``.tmp-<run>`` and renamed when it succeeds, so an earlier successful result is
replaced only by a complete new one. A failing cell raises :class:`StudyError` naming the notebook and
cell; the failed attempt is kept as ``<run>.failed`` for inspection. Ctrl-C removes the unfinished
``.tmp-<run>``. The metadata records the run's fingerprint and a fresh ``run_id`` (see
:mod:`crack_utils.study.freshness`) and, for a training, the segments that trained its weights.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crack_utils import run_metadata
from crack_utils.study import freshness

NOTEBOOKS = {
    "data": "notebooks/01_clean_data.ipynb",
    "distance": "notebooks/02_distance_maps.ipynb",
    "train": "notebooks/03_train_model.ipynb",
    "evaluate": "notebooks/04_evaluate_model.ipynb",
    "report": "notebooks/05_make_figures.ipynb",
    "generalization": "notebooks/06_generalization.ipynb",  # across studies: crack_utils.generalization
}

class StudyError(RuntimeError):
    """A stage failed; the message says which notebook and cell, and where the partial output is."""


@dataclass
class Run:
    stage: str
    name: str  # folder under results/<config>/
    parameters: dict = field(default_factory=dict)
    deps: tuple = ()  # names of the runs whose outputs this run reads

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]


def kernel_name() -> str:
    """A kernel that runs *this* interpreter: install a 'python3' spec into this environment's prefix
    and put it first on JUPYTER_PATH, so a user-level python3 kernel elsewhere is not picked up."""
    from ipykernel.kernelspec import install

    share = Path(sys.prefix) / "share" / "jupyter"
    spec = share / "kernels" / "python3" / "kernel.json"
    if not spec.is_file() or json.loads(spec.read_text())["argv"][0] != sys.executable:
        install(prefix=sys.prefix, kernel_name="python3", display_name="Python 3 (crack study)")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(share), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep)
    return "python3"


def render_html(notebook: Path, html: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    html.write_text(body, encoding="utf-8")


def _relative_papermill_paths(executed: Path, repo: Path, source: str, final: Path) -> None:
    """Papermill records absolute input/output paths; store them relative to the repository root."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata.setdefault("papermill", {})
    nb.metadata["papermill"]["input_path"] = source
    nb.metadata["papermill"]["output_path"] = (final / executed.name).relative_to(repo).as_posix()
    nbformat.write(nb, executed)


def check_parameters(run: Run, repo: Path) -> None:
    """Raise :class:`StudyError` if ``run`` passes a parameter its notebook does not declare (a typo
    would otherwise be ignored by papermill with a mere warning)."""
    import papermill

    declared = set(papermill.inspect_notebook(str(repo / run.notebook)))
    unknown = sorted((set(run.parameters) | {"OUT_DIR"}) - declared)
    if unknown:
        raise StudyError(f"{run.notebook} has no parameter(s) {', '.join(unknown)}; it declares: "
                         f"{', '.join(sorted(declared))}")


def check_writable(folder: Path) -> None:
    """Raise :class:`StudyError` naming ``folder`` if results cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise StudyError(f"cannot write results to {folder}: {err.strerror or err}. Make the folder writable "
                         "or choose another config name.") from None


#: Seconds a kernel may take to start: papermill's 60 s default was exceeded once on 2 cores that a test suite
#: kept busy (a fresh clone's test run of c52b253).
KERNEL_START_TIMEOUT_S = 300


def execute(run: Run, results: Path, repo: Path, kernel: str, progress: bool = True,
            fingerprint: dict | None = None, restore: bool = False) -> bool:
    """Execute one notebook run into ``results/<run.name>`` atomically. ``fingerprint`` (see
    :mod:`crack_utils.study.freshness`) is stored in its metadata.

    ``restore``: the run is executed again only because its git-ignored outputs are missing (its folder
    holds a finished run with this fingerprint). When the new result is the same
    (:func:`crack_utils.study.freshness.same_result`), the committed folder is kept — its ``run_id``, so
    nothing downstream reruns — and only the files it lacks are added from the new execution. Returns True
    when the committed folder was kept, False when the new execution replaced it."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from crack_utils.study.kernel_logs import drop_stopped_kernel_records
    from crack_utils.study.quiet_kernel import QuietKernelManager

    drop_stopped_kernel_records()  # after Ctrl-C, the study's one line (a dead kernel is reported below)
    check_parameters(run, repo)
    final = results / run.name
    tmp = final.with_name(f".tmp-{final.name}")
    failed = final.with_name(f"{final.name}.failed")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parameters = dict(run.parameters, OUT_DIR=tmp.relative_to(repo).as_posix())
    executed = tmp / Path(run.notebook).name
    started, t0 = datetime.now(), time.perf_counter()
    try:
        papermill.execute_notebook(str(repo / run.notebook), str(executed), parameters=parameters,
                                   kernel_name=kernel, cwd=str(repo), progress_bar=progress, log_output=False,
                                   kernel_manager_class=QuietKernelManager,
                                   start_timeout=KERNEL_START_TIMEOUT_S)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            shutil.rmtree(tmp, ignore_errors=True)
            raise KeyboardInterrupt from None
        shutil.rmtree(failed, ignore_errors=True)
        tmp.rename(failed)
        try:
            render_html(failed / executed.name, failed / executed.with_suffix(".html").name)
        except Exception:  # the error message below matters more than the rendering
            pass
        raise StudyError(
            f"{run.notebook} failed in cell {err.cell_index} (execution count {err.exec_count}) with "
            f"{err.ename}: {err.evalue}\nThe executed notebook with the traceback is "
            f"{(failed / executed.name).relative_to(repo)}. Results of earlier successful runs are untouched"
            + (f" (the previous {final.relative_to(repo)} is kept)." if final.exists() else ".")) from None
    except Exception as err:  # the kernel died (e.g. killed for memory), could not start, or saving failed
        shutil.rmtree(failed, ignore_errors=True)
        if tmp.exists():
            tmp.rename(failed)
        raise StudyError(
            f"{run.notebook} stopped: {type(err).__name__}: {err}. The kernel may have been killed (out of memory?); "
            f"what was written is in {failed.relative_to(repo)}. Rerun to continue (a training resumes from its "
            "last checkpoint).") from None
    wall = time.perf_counter() - t0
    if restore and final.is_dir() and freshness.same_result(run.stage, final, tmp):
        for path in sorted(tmp.rglob("*")):  # add what the committed folder lacks; replace nothing
            target = final / path.relative_to(tmp)
            if path.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(target))
        shutil.rmtree(tmp, ignore_errors=True)
        return True
    _relative_papermill_paths(executed, repo, run.notebook, final)
    render_html(executed, executed.with_suffix(".html"))
    metadata = run_metadata.collect({"notebook": run.notebook, **parameters}, wall, started, repo)
    metadata["run_id"] = freshness.new_run_id()
    metadata["fingerprint"] = fingerprint
    from crack_utils.training import SEGMENTS_FILE

    segments = tmp / SEGMENTS_FILE
    if segments.is_file():  # who trained the weights (a rerun that trained nothing does not claim them)
        metadata["weights_trained_by"] = json.loads(segments.read_text())
    run_metadata.write(tmp / freshness.METADATA, metadata)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    shutil.rmtree(failed, ignore_errors=True)
    return False
