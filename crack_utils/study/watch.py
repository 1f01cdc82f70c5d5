"""Live progress of a running study, on the console: runs done / running / queued with an ETA, and for
each running training its epoch, training loss, validation Dice and seconds per epoch.

It reads only files, so it works the same whether the runs execute in this process or on Dask workers
(on this machine or on a cluster with a shared filesystem):

* a run is *running* while its ``.tmp-<run>`` folder exists (the pipeline executes every run there and
  renames it when it succeeds);
* a training reports ``checkpoints/<tag>/progress.json`` (written by :func:`crack_utils.training.train`
  at every epoch's end and every ~10 s within an epoch).

:class:`Watcher` prints a line whenever something changed, at most every ``interval`` seconds, from a
background thread; :func:`status_line` is the pure function that composes it.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from crack_utils.study import layout
from crack_utils.training import PROGRESS_FILE


def read_progress(checkpoint_dir: str | Path) -> dict | None:
    """A training's ``progress.json`` (see :class:`crack_utils.training.ProgressFile`), None if absent."""
    try:
        return json.loads((Path(checkpoint_dir) / PROGRESS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def training_line(name: str, progress: dict | None) -> str:
    """``bce-seed0: epoch 2/10 (40 %), loss 0.2312, val Dice 0.612, 615 s/epoch`` (what is known so far)."""
    if not progress:
        return f"{name}: starting"
    epochs, done = progress.get("epochs") or 0, progress.get("epoch") or 0
    batches, batch = progress.get("batches") or 0, progress.get("batch") or 0
    running = min(done + 1, epochs) if batch and done < epochs else max(done, 1)
    share = f" ({100 * batch / batches:.0f} %)" if batch and batches and done < epochs else ""
    parts = [f"{name}: epoch {running}/{epochs}{share}"]
    if progress.get("train_loss") is not None:
        parts.append(f"loss {progress['train_loss']:.4f}")
    if progress.get("val_dice") is not None:
        parts.append(f"val Dice {progress['val_dice']:.3f}")
    if progress.get("seconds_per_epoch"):
        parts.append(f"{progress['seconds_per_epoch']:.0f} s/epoch")
    return ", ".join(parts)


def remaining_epochs(epochs: int, progress: dict | None) -> float:
    """Epochs a training still has to run, counting the finished share of the running epoch. ``epochs`` is
    the planned length; the training's own target (``progress["epochs"]``) wins when it is longer: a training
    extended to its plateau (``training.plateau_max_epochs``) runs past the length it was planned at."""
    if not progress:
        return float(epochs)
    epochs = max(int(epochs), int(progress.get("epochs") or 0))
    done = float(progress.get("epoch") or 0)
    if progress.get("batches") and progress.get("batch") and done < epochs:
        done += progress["batch"] / progress["batches"]
    return max(0.0, epochs - done)


#: The share of its first epoch a training must have run before its epoch time is extrapolated from it.
MIN_SHARE_TO_EXTRAPOLATE = 0.02


def estimated_seconds_per_epoch(progress: dict | None) -> float | None:
    """A training's seconds per epoch: the mean over its finished epochs, else -- while its first epoch runs,
    once ``MIN_SHARE_TO_EXTRAPOLATE`` of its steps (and at least one) are finished -- the time of the
    finished steps scaled to all of them, ``epoch_seconds * batches / (batch - 1)`` (``batch`` is the step
    running, so ``batch - 1`` are finished; an estimate: validation is left out). None while nothing is
    timed. So a one-epoch training of ten minutes gets an ETA early, not at its end."""
    if not progress:
        return None
    if progress.get("seconds_per_epoch"):
        return float(progress["seconds_per_epoch"])
    finished = (progress.get("batch") or 0) - 1
    batches, elapsed = progress.get("batches") or 0, progress.get("epoch_seconds")
    if elapsed and batches and finished >= max(1.0, MIN_SHARE_TO_EXTRAPOLATE * batches):
        return float(elapsed) * batches / finished
    return None


def eta_seconds(train_epochs_left: float, seconds_per_epoch: float | None, other_runs_left: int,
                seconds_per_other_run: float | None, workers: int) -> float | None:
    """Wall time left: training epochs x seconds per epoch, plus the other runs x their mean time, shared
    by ``workers``. None while no training has been timed yet (:func:`estimated_seconds_per_epoch`; no honest
    estimate)."""
    if train_epochs_left > 0 and not seconds_per_epoch:
        return None
    total = train_epochs_left * (seconds_per_epoch or 0.0) + other_runs_left * (seconds_per_other_run or 0.0)
    return total / max(1, workers)


def status_line(done: int, running: list[str], queued: int, failed: int, eta: float | None,
                trainings: list[str]) -> str:
    """One progress line: counts, ETA and the running trainings' lines."""
    head = f"{done} done, {len(running)} running, {queued} queued" + (f", {failed} failed" if failed else "")
    head += f", ETA {_duration(eta)}" if eta is not None else ", ETA once a training has run a while"
    others = [r for r in running if f"/{layout.TRAIN}/" not in f"/{r}"]
    return "  [progress] " + " | ".join([head, *trainings, *others])


class Watcher:
    """Prints :func:`status_line` for a study's runs from a background thread.

    ``runs``: the study's runs (objects with ``name``, ``stage``, ``parameters``); ``finished``: a dict the
    executor fills with ``{run name: status}`` as runs end (shared, read here); ``workers``: runs at once.
    """

    def __init__(self, runs, results: Path, repo: Path, finished: dict, workers: int = 1, interval: float = 15.0,
                 stream=None):
        import sys

        self.runs, self.results, self.repo, self.finished, self.workers = list(runs), Path(results), Path(repo), finished, workers
        self.interval, self.stream = interval, stream or sys.stdout
        self._stop, self._thread, self._last = threading.Event(), None, None
        self.durations: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._per_epoch: dict[str, float] = {}  # seconds per epoch of every training seen so far
        self._timed_to_the_end: set[str] = set()  # finished trainings whose progress was read after their end

    def _label(self, name: str) -> str:
        """A training's label: ``bce-seed0``, or ``lodo_cfd/bce-seed0`` when several studies run."""
        parts = name.split("/")
        studies = {r.name.split("/")[0] for r in self.runs if "/" in r.name and r.name.count("/") >= 2}
        return f"{parts[0]}/{parts[-1]}" if len(studies) > 1 and len(parts) >= 3 else parts[-1]

    def _is_running(self, run) -> bool:
        folder = self.results / run.name
        return (folder.parent / f".tmp-{folder.name}").is_dir()

    def line(self) -> str:
        """The current status line (see :func:`status_line`)."""
        now = time.monotonic()
        finished = dict(self.finished)  # a snapshot: the executor adds to it meanwhile
        running, trainings = [], []
        train_left, other_left = 0.0, 0
        for run in self.runs:
            done = run.name in finished
            if done and (run.stage != "train" or run.name in self._timed_to_the_end):
                continue
            is_running = not done and self._is_running(run)
            if is_running:
                running.append(run.name)
                self._started.setdefault(run.name, now)
            if run.stage == "train":
                # running: its epochs so far (or its first epoch's share); finished: read once more, so the
                # epochs' measured mean replaces an estimate made while it ran
                progress = read_progress(self.repo / run.parameters["CHECKPOINT_DIR"]) if is_running or done else None
                timed = estimated_seconds_per_epoch(progress)
                if timed:
                    self._per_epoch[run.name] = timed
                if done:
                    self._timed_to_the_end.add(run.name)
                    continue
                if is_running:
                    trainings.append(training_line(self._label(run.name), progress))
                train_left += remaining_epochs(int(run.parameters["EPOCHS"]), progress)
            else:
                other_left += 1
        for name in list(self._started):
            if name in finished:
                self.durations.setdefault(name, now - self._started.pop(name))
        stages = {run.name: run.stage for run in self.runs}
        others = [d for n, d in self.durations.items() if stages.get(n) != "train"]
        per_epoch = list(self._per_epoch.values())
        eta = eta_seconds(train_left, sum(per_epoch) / len(per_epoch) if per_epoch else None, other_left,
                          sum(others) / len(others) if others else 30.0, self.workers)
        failed = sum(1 for status in finished.values() if status in ("failed", "blocked"))
        queued = max(0, len(self.runs) - len(finished) - len(running))
        return status_line(len(finished) - failed, running, queued, failed, eta, trainings)

    def tick(self, force: bool = False) -> None:
        """Print the status line if it changed (or ``force``)."""
        text = self.line()
        key = text.split(", ETA")[0] + text.split("|", 1)[-1]
        if force or key != self._last:
            self._last = key
            print(text, file=self.stream, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # progress display must never break a study
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, name="study-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return False
