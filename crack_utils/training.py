"""Training loop: Adam, per-epoch history, checkpoints every epoch, resume, divergence check.

Checkpoints, each written under a temporary name and renamed, so a killed run never leaves a half-written one:

* ``last.pt`` (every epoch): what resuming needs — model, optimizer, epoch, history and RNG states.
  With ``resume=True`` a rerun continues from it.
* ``best.pt`` (at the best validation Dice so far): what evaluation needs — the weights, the epoch and
  the history up to it (no optimizer state: a third of the size).
* ``best-epoch<k>.pt`` for each ``k`` in ``snapshot_epochs``: the best weights *as of* epoch ``k``, i.e.
  exactly the ``best.pt`` a training of ``k`` epochs would have left. With the paper's constant learning
  rate, evaluating these snapshots of one long training is the same as training each budget separately
  (same seeded sampling, augmentation and dropout streams); the training-length study relies on that.
  Each is a hard link to the ``best.pt`` of its epoch (:func:`keep_as`), so it costs no space of its own
  while the best weights stay the same.

Beside them, for whoever watches or audits the training:

* ``progress.json`` (:data:`PROGRESS_FILE`; at every epoch's end and every ~10 s within an epoch): epoch,
  batches done, last training loss, validation Dice, seconds per epoch and the running epoch's seconds so
  far — what the pipeline's live progress line and its ETA show (:mod:`crack_utils.study.watch`).
* ``segments`` inside ``last.pt``, ``best.pt`` and the run folder's ``training_segments.json``: one entry
  per call of :func:`train` that trained at least one epoch (epochs from/to, wall seconds, commit, machine),
  so the metadata of the weights survives a rerun that trains nothing or extends the training.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from crack_utils.progress import progress_bar

from crack_utils.loader import EpochSampler
from crack_utils.metrics import pooled_scores
from crack_utils import paper, run_metadata
from crack_utils.run_metadata import native_cpu_bf16
from crack_utils.training_records import PARAMETERS_FILE, TrainingParameters


LR_SCHEDULES = ("constant", "cosine")
#: Where training batches are made: the CPU DataLoader over :class:`~crack_utils.loader.CrackDataset`, or
#: :class:`~crack_utils.device_batches.DeviceBatches` on the training device; "auto": the device on CUDA
#: (a CPU loader cannot feed a GPU), the loader otherwise and for the skeleton-tube map.
BATCH_SOURCES = ("auto", "loader", "device")
PROGRESS_FILE = "progress.json"
SEGMENTS_FILE = "training_segments.json"
#: On CUDA a training step does not wait for the GPU: the loss is read (and checked for NaN) every this
#: many steps and at the end of each epoch (:class:`LossSum`); on CPU every step.
SYNC_EVERY = 50
#: Devices where the model and its inputs are kept channels-last (NHWC): oneDNN's fast layout on CPU,
#: cuDNN's tensor-core layout for bf16 convolutions on CUDA.
CHANNELS_LAST_DEVICES = ("cpu", "cuda")
#: Parameters a constant-rate training may change and still continue from its checkpoint (longer training).
EXTENDABLE = ("EPOCHS", "SNAPSHOT_EPOCHS")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def keep_as(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link to ``src`` (a copy where the filesystem has none), atomically.

    Snapshots are hard links to the ``best.pt`` of their epoch: no extra bytes while they are the same
    weights, and no change when a later ``best.pt`` replaces that file (every checkpoint is written under a
    new name and renamed, never in place)."""
    tmp = dst.with_name(f".tmp-{os.getpid()}-{dst.name}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


@torch.no_grad()
def validate(model, loader, loss_fn, device, threshold: float = 0.5, amp: bool = False) -> dict:
    """Mean loss and pooled scores (thresholded) of ``model`` over ``loader``."""
    model.eval()
    losses, preds, targets = [], [], []
    for image, mask, dist in loader:
        image, mask, dist = (t.to(device, non_blocking=True) for t in (image, mask, dist))
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            logits = model(image).float()
        losses.append(float(loss_fn(logits, mask, dist)) * len(image))
        preds.append((torch.sigmoid(logits) > threshold).cpu().numpy()[:, 0])
        targets.append(mask.cpu().numpy()[:, 0] > 0.5)
    scores = pooled_scores(np.concatenate(preds), np.concatenate(targets))
    return {"val_loss": sum(losses) / sum(len(p) for p in preds), **{f"val_{k}": v for k, v in scores.items()}}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, image: torch.Tensor,
               mask: torch.Tensor, aux: torch.Tensor | None, *, amp: bool = False, channels_last: bool = False,
               before_backward=None) -> torch.Tensor:
    """One optimisation step — the one every training (:func:`train`) and every benchmark
    (:mod:`crack_utils.tools`) takes.

    ``image``: (N, 3, H, W) float in [0, 1] on the model's device (made channels-last first when
    ``channels_last``); ``mask``: (N, 1, H, W) in {0, 1}; ``aux``: the map the loss reads (distance map or
    skeleton tube, (N, 1, H, W)) or None. The forward pass runs under bf16 autocast when ``amp`` (a bool:
    resolve ``"auto"`` with :func:`resolve_amp` first); the loss is computed in float32 either way.
    ``before_backward(loss)``, when given, sees the loss before the weights change (the divergence check and
    the progress line of :func:`train`). Then zero_grad, backward, step. Returns the loss, a 0-d tensor (not
    synchronised with the device)."""
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(image)
    loss = loss_fn(logits, mask, aux)
    if before_backward is not None:
        before_backward(loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train(model: torch.nn.Module, loss_fn, train_set, val_set, out_dir: str | Path, *,
          checkpoint_dir: str | Path | None = None, epochs: int = paper.EPOCHS,
          batch_size: int = paper.BATCH_SIZE, lr: float = paper.LR, device: torch.device | str = "cpu",
          seed: int = 0,
          samples_per_epoch: int | None = None, num_workers: int = 0, resume: bool = True,
          amp: bool | str = "auto", progress: bool = True, snapshot_epochs=(), batches: str = "loader",
          lr_schedule: str = "constant") -> pd.DataFrame:
    """Train ``model`` with Adam on ``train_set``; returns the per-epoch history.

    Both sets yield ``(image, mask, dist)``. ``samples_per_epoch``: images drawn (without replacement,
    seeded by ``(seed, epoch)``) per epoch, ``None`` for the whole training split. Writes ``last.pt`` and ``best.pt`` to
    ``checkpoint_dir`` (default ``out_dir/checkpoints``) and ``out_dir/history.csv`` (columns ``epoch, train_loss, val_loss, val_precision,
    val_recall, val_f1, val_iou, val_dice, lr, seconds``). Raises :class:`TrainingDivergedError` on a
    NaN/inf loss. ``amp``: bf16 autocast for the forward pass (``"auto"``: see :func:`resolve_amp`); losses
    are computed in float32 either way.
    ``snapshot_epochs``: epochs after which the best weights so far are kept as ``best-epoch<k>.pt``
    (meaningful as shorter trainings only with a constant learning rate). ``lr_schedule``: ``"constant"``
    (the paper's) or ``"cosine"`` (annealed per epoch from ``lr`` to 0 at ``epochs``, so the weights settle
    and the last epochs show whether training has converged rather than the jitter of a constant rate).
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    if batches not in BATCH_SOURCES:
        raise ValueError(f"unknown batches {batches!r}; valid: {', '.join(BATCH_SOURCES)}")
    out_dir = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model.to(device)
    channels_last = device.type in CHANNELS_LAST_DEVICES
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if lr_schedule == "cosine" else None
    history: list[dict] = []
    segments: list[dict] = []
    start_epoch = 0
    last = ckpt_dir / "last.pt"
    if resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        segments = state.get("segments", [])
        start_epoch = state["epoch"]
        _set_rng_state(state["rng"])
    pin = device.type == "cuda"
    use_amp = resolve_amp(amp, device)
    if resolve_batches(batches, device, train_set) == "device":
        train_loader, val_loader = device_loaders(train_set, val_set, device, batch_size, samples_per_epoch, seed)
        sampler = train_loader
    else:
        sampler = EpochSampler(len(train_set), samples_per_epoch, seed=seed)
        train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                  pin_memory=pin, persistent_workers=num_workers > 0, drop_last=False)
        val_loader = DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin)
    best = max((h["val_dice"] for h in history), default=-math.inf)
    segment = {"epochs_from": start_epoch, "epochs_to": start_epoch, "seconds": 0.0, **_provenance()}
    watch = ProgressFile(ckpt_dir / PROGRESS_FILE, epochs=epochs, batches=len(train_loader))
    watch.write(epoch=start_epoch, batch=0, history=history, force=True)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        model.train()
        loss_sum = LossSum(device, every=1 if device.type == "cpu" else SYNC_EVERY)
        bar = progress_bar(train_loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, enabled=progress)
        steps_done_at = t0  # when the epoch's last finished step ended (its progress clock)
        for step, (image, mask, dist) in enumerate(bar, 1):
            image = image.to(device, non_blocking=pin)
            mask, dist = mask.to(device, non_blocking=pin), dist.to(device, non_blocking=pin)

            def check_and_report(loss, step=step, n=len(image)):
                if loss_sum.add(loss, n) or watch.due():  # on CPU: every step, before it is taken
                    mean = loss_sum.mean(epoch + 1, last)
                    bar.set_postfix(loss=f"{mean:.4f}")
                    watch.write(epoch=epoch, batch=step, history=history, train_loss=mean,
                                epoch_seconds=steps_done_at - t0)

            train_step(model, optimizer, loss_fn, image, mask, dist, amp=use_amp, channels_last=channels_last,
                       before_backward=check_and_report)
            steps_done_at = time.perf_counter()
        row = {"epoch": epoch + 1, "train_loss": loss_sum.mean(epoch + 1, last)}
        row.update(validate(model, val_loader, loss_fn, device, amp=use_amp))
        row.update({"lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
        if scheduler is not None:
            scheduler.step()
        history.append(row)
        segment = dict(segment, epochs_to=epoch + 1, seconds=round(segment["seconds"] + row["seconds"], 2))
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "history": history, "rng": _rng_state(), "segments": [*segments, segment]}
        if row["val_dice"] > best:
            best = row["val_dice"]
            atomic_torch_save(weights_only(state), ckpt_dir / "best.pt")
        if epoch + 1 in set(snapshot_epochs):
            keep_as(ckpt_dir / "best.pt", ckpt_dir / snapshot_name(epoch + 1))
        atomic_torch_save(state, last)
        watch.write(epoch=epoch + 1, batch=0, history=history, force=True)
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
                  f"val_dice {row['val_dice']:.4f}  ({row['seconds']:.0f} s)", flush=True)
    frame = pd.DataFrame(history)
    frame.to_csv(out_dir / "history.csv", index=False)
    done = [*segments, segment] if segment["epochs_to"] > segment["epochs_from"] else segments
    (out_dir / SEGMENTS_FILE).write_text(json.dumps(done, indent=2, default=str) + "\n")
    return frame


def _provenance() -> dict:
    """Commit and machine of this process, for the ``segments`` of a training (see the module docstring)."""
    from crack_utils.paths import repo_root

    try:
        git = run_metadata.git_state(repo_root())
    except FileNotFoundError:
        git = {"commit": None, "dirty": None}
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": git, "device": run_metadata.device_description()}


class LossSum:
    """The running sum of a training epoch's loss, kept on the training device so that a step does not wait
    for the GPU: :meth:`add` returns True every ``every`` steps, when the caller should read :meth:`mean`
    (which synchronizes, and raises :class:`TrainingDivergedError` if any loss since the last read was NaN
    or infinite — they propagate into the sum). On CPU ``every`` is 1: the sum is the same float64
    arithmetic as adding ``float(loss) * n`` step by step."""

    def __init__(self, device: torch.device, every: int):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.seen, self.steps, self.every = 0, 0, every

    def add(self, loss: torch.Tensor, n: int) -> bool:
        self.total += loss.detach().double() * n
        self.seen += n
        self.steps += 1
        return self.steps % self.every == 0

    def mean(self, epoch: int, last: Path) -> float:
        value = float(self.total) / max(self.seen, 1)
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"loss became {value} in epoch {epoch}; training stopped. The last good "
                f"checkpoint ({last if last.exists() else 'none yet'}) is kept. Try a lower learning rate.")
        return value


class ProgressFile:
    """Writes ``progress.json`` (atomically) at most every ``every`` seconds, or when forced: ``epoch``
    (epochs finished), ``epochs``, ``batch``/``batches`` within the running epoch, the running training
    loss, the last validation Dice, the mean seconds per epoch so far and ``epoch_seconds``, the seconds
    the running epoch's ``batch - 1`` finished steps took (written before step ``batch`` is taken; None
    between epochs): what an ETA extrapolates from before the first epoch ends."""

    def __init__(self, path: Path, epochs: int, batches: int, every: float = 10.0):
        self.path, self.epochs, self.batches, self.every, self.last = path, epochs, batches, every, -math.inf

    def due(self) -> bool:
        """Whether :meth:`write` would write now (it is time again)."""
        return time.monotonic() - self.last >= self.every

    def write(self, epoch: int, batch: int, history: list, train_loss: float | None = None, force: bool = False,
              epoch_seconds: float | None = None):
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        done = history[-1] if history else {}
        seconds = [h["seconds"] for h in history if "seconds" in h]
        info = {"epoch": epoch, "epochs": self.epochs, "batch": batch, "batches": self.batches,
                "train_loss": train_loss if train_loss is not None else done.get("train_loss"),
                "val_dice": done.get("val_dice"), "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
                "epoch_seconds": epoch_seconds, "updated": time.time()}
        tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        try:
            tmp.write_text(json.dumps(info))
            os.replace(tmp, self.path)
        except OSError:  # progress display must never stop a training
            pass


def resolve_batches(batches: str, device, train_set) -> str:
    """``"loader"`` or ``"device"`` for :data:`BATCH_SOURCES` ``batches`` (see there)."""
    if batches != "auto":
        return batches
    return "device" if torch.device(device).type == "cuda" and getattr(train_set, "aux", "distance") == "distance" else "loader"


def device_loaders(train_set, val_set, device, batch_size: int, samples_per_epoch: int | None, seed: int):
    """:class:`~crack_utils.device_batches.DeviceBatches` for training (augmented when ``train_set`` is) and
    validation (stored order, no augmentation) over the arrays and map settings of two
    :class:`~crack_utils.loader.CrackDataset`s; the arrays are uploaded to ``device`` once."""
    from crack_utils.device_batches import DeviceBatches

    common = dict(device=device, normalization=train_set.normalization, radius=train_set.radius, aux=train_set.aux)
    train = DeviceBatches(train_set.images, train_set.masks, batch_size, augment=train_set.augment is not None,
                          num_samples=samples_per_epoch, seed=seed, **common)
    val = DeviceBatches(val_set.images, val_set.masks, batch_size, augment=False, shuffle=False, **common)
    return train, val


def parse_amp(text: str | bool) -> bool | str:
    """A command line's ``--amp`` value: ``"auto"`` (decided by :func:`resolve_amp`), ``on``/``true``/``1``
    or ``off``/``false``/``0``; ValueError otherwise."""
    if isinstance(text, bool) or text == "auto":
        return text
    value = str(text).strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"--amp must be auto, on or off, got {text!r}")


def resolve_amp(amp: bool | str, device: torch.device | str) -> bool:
    """Whether to train with bf16 autocast: ``True``/``False`` as given; ``"auto"``: on CUDA, and on CPUs
    with native bf16 (:func:`crack_utils.run_metadata.native_cpu_bf16`). Measured (``make bench``, figure
    ``cpu_bf16_over_fp32_step_ratio``): on an AVX2-only CPU bf16 autocast is ~14x *slower* than fp32,
    so ``"auto"`` never turns it on there."""
    if amp != "auto":
        return bool(amp)
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and native_cpu_bf16())


#: The plateau rule (issue 25): a training is on its plateau when its best validation Dice rose by less than
#: PLATEAU_GAIN over its last PLATEAU_PASSES epochs.
PLATEAU_GAIN = 0.005
PLATEAU_PASSES = 2


def plateau_status(history: pd.DataFrame, gain: float = PLATEAU_GAIN, passes: int = PLATEAU_PASSES) -> dict:
    """Whether a training reached its plateau, from its history (one row per epoch, ``val_dice``): the best
    validation Dice up to the last epoch exceeds the best up to ``passes`` epochs earlier by less than
    ``gain`` (a drop is no rise). Returns ``epochs``, ``best``, ``best_before`` (the best ``passes`` epochs
    earlier), ``gain`` and ``plateau`` (False with too few epochs to tell)."""
    best = pd.Series(history["val_dice"], dtype=float).cummax().to_numpy()
    if len(best) <= passes:
        return {"epochs": len(best), "best": float(best[-1]) if len(best) else float("nan"),
                "best_before": float("nan"), "gain": float("nan"), "plateau": False}
    rise = float(best[-1] - best[-1 - passes])
    return {"epochs": len(best), "best": float(best[-1]), "best_before": float(best[-1 - passes]), "gain": rise,
            "plateau": rise < gain}


def epochs_to_plateau(history: pd.DataFrame | None, epochs: int, max_epochs: int,
                      step: int = PLATEAU_PASSES) -> int:
    """How many epochs to plan for a constant-rate training that has to reach its plateau
    (``training.plateau_max_epochs``): ``epochs`` while it has trained fewer (or has no ``history``); the
    epochs it has when its history (one row per epoch, ``val_dice``) is on the plateau
    (:func:`plateau_status`) or has ``max_epochs``; else ``step`` more, at most ``max_epochs``. Never fewer
    than it has: a training is extended from its checkpoint, never shortened. A training planned so is
    done when the number stops changing."""
    trained = 0 if history is None else len(history)
    if trained < epochs:
        return int(epochs)
    if trained >= max_epochs or plateau_status(history)["plateau"]:
        return trained
    return min(trained + int(step), int(max_epochs))


def plateau_reached(history: pd.DataFrame) -> bool:
    """:func:`plateau_status`'s verdict (what notebook 03 writes into ``training_summary.json``)."""
    return bool(plateau_status(history)["plateau"])


def weights_only(state: dict) -> dict:
    """The part of a training state that evaluation needs: weights, epoch, history and the segments that
    trained them (no optimizer)."""
    return {"model": state["model"], "epoch": state["epoch"], "history": state["history"],
            "segments": state.get("segments", [])}


def snapshot_name(epoch: int) -> str:
    """File name of the best-weights-as-of-``epoch`` snapshot (see the module docstring)."""
    return f"best-epoch{int(epoch)}.pt"


def load_checkpoint(model: torch.nn.Module, path: str | Path, device="cpu") -> dict:
    """Load weights from a checkpoint written by :func:`train` into ``model``; returns the checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; run the training notebook (03) first")
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    return state


def prepare_checkpoint_dir(path: str | Path, parameters: dict) -> str:
    """Make ``path`` ready for :func:`train`: ``"resume"`` if it holds checkpoints of a run with the same
    ``parameters`` (notebook 03's, checked against :class:`~crack_utils.training_records.TrainingParameters`:
    a ValueError names an unknown or missing one); ``"extend"`` if they differ only in :data:`EXTENDABLE` (more epochs,
    other snapshot epochs) of a constant-rate training that has not trained past the new ``EPOCHS`` —
    with a constant learning rate, continuing is the same as training longer from the start; ``"fresh"``
    otherwise (stale checkpoints are removed).

    A ValueError, not a silent fresh start, when only the length changed but the training cannot be
    extended to it — it has trained past the new ``EPOCHS``, or a new budget lies in its past — since a
    fresh start would delete hours of training (a staged study whose config lost a stage): the message
    says to raise ``training.epochs`` or to start afresh with ``--force train``."""
    import shutil

    path = Path(path)
    wanted_parameters = TrainingParameters.from_mapping(parameters, "notebook 03's parameters")
    wanted = wanted_parameters.to_json()
    stored = None
    if (path / PARAMETERS_FILE).is_file() and (path / "last.pt").is_file():
        try:
            stored = TrainingParameters.read(path).to_json()  # a stamp from before a parameter existed: its default
        except ValueError:  # not a stamp of this study's trainings: start afresh
            stored = None
    if stored is not None:
        if stored == wanted:
            return "resume"
        trained = _trained_epochs(path / "last.pt") if _extends(stored, wanted) else None
        past_snapshots = {int(k) for k in wanted.get("SNAPSHOT_EPOCHS") or [] if int(k) <= (trained or 0)}
        missing = [k for k in past_snapshots if not (path / snapshot_name(k)).is_file()]
        if trained is not None and trained <= int(wanted["EPOCHS"]) and not missing:
            wanted_parameters.write(path)
            return "extend"
        if trained is not None:
            why = (f"trained for {trained} epochs, more than EPOCHS = {wanted['EPOCHS']}" if trained > int(wanted["EPOCHS"])
                   else f"already past the new snapshot epochs {missing}, which it did not keep")
            raise ValueError(f"the checkpoints in {path} belong to the same training, {why}; it cannot be "
                             "shortened or given past budgets without training it again. Raise training.epochs "
                             "(or drop those snapshot epochs), or retrain from scratch: --force train in the "
                             "pipeline, or delete the folder")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    wanted_parameters.write(path)
    return "fresh"


def _extends(stored: dict, wanted: dict) -> bool:
    """Whether ``wanted`` differs from ``stored`` only in :data:`EXTENDABLE`, with a constant rate."""
    same = {k: v for k, v in stored.items() if k not in EXTENDABLE} == {k: v for k, v in wanted.items() if k not in EXTENDABLE}
    return same and wanted.get("LR_SCHEDULE", "constant") == "constant" and "EPOCHS" in wanted


def _trained_epochs(last: Path) -> int:
    return int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
