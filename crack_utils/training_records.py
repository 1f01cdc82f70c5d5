"""What a training hands on to the runs after it, as two documented schemas instead of a dump of notebook 03's
globals:

* :class:`TrainingParameters` — ``parameters.json`` in the training's checkpoint folder: the papermill
  parameters of notebook 03 that made the checkpoints (names as in its parameters cell) and the
  fingerprint of the data they were trained on. Resuming compares it (:func:`crack_utils.training.
  prepare_checkpoint_dir`); notebook 04 and ``tools.loss_terms`` rebuild the model from it.
* :class:`TrainingSummary` — ``training_summary.json`` in the training's run folder (``03_train/<tag>/``):
  what the training did, read by the protocol line, the training-length table and the report.

Notebook 03 still collects its parameters from its upper-case globals (its bytes are part of every committed
training's fingerprint), but the collection is checked against :class:`TrainingParameters` before anything
is written: a new or missing parameter is an error naming it, not a silent change of the file format.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

PARAMETERS_FILE = "parameters.json"
SUMMARY_FILE = "training_summary.json"


def _check_names(cls, values: dict, source: str, defaults_allowed: bool = True) -> None:
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls)
                if not defaults_allowed or (f.default is MISSING and f.default_factory is MISSING)}
    unknown, missing = sorted(set(values) - names), sorted(required - set(values))
    if unknown or missing:
        raise ValueError(f"{source} does not match crack_utils.training_records.{cls.__name__}: "
                         + "; ".join(part for part in (f"unknown {', '.join(unknown)}" if unknown else "",
                                                       f"missing {', '.join(missing)}" if missing else "") if part))


@dataclass(frozen=True)
class TrainingParameters:
    """``parameters.json``: notebook 03's parameters (see its parameters cell for each one's meaning) and
    ``DATA_FINGERPRINT`` (:func:`crack_utils.manifest.fingerprint` of ``DATA_DIR``). Stamps written before
    a parameter existed read it as its default (``BATCHES``: ``"auto"``, what those trainings did)."""
    DATA_DIR: str
    CHECKPOINT_DIR: str
    LOSS: str
    LOSS_OPTIONS: dict
    SEED: int
    ENCODER: str
    ENCODER_WEIGHTS: str | None
    DROPOUT: float
    DECODER_CHANNELS: list
    CRACK_PRIOR: float | None
    EPOCHS: int
    BATCH_SIZE: int
    LR: float
    LR_SCHEDULE: str
    SAMPLES_PER_EPOCH: int | None
    NUM_WORKERS: int
    DEVICE: str
    DETERMINISTIC: bool
    AMP: bool | str
    NORMALIZATION: str
    RADIUS: float
    SNAPSHOT_EPOCHS: list
    DATA_FINGERPRINT: str
    BATCHES: str = "auto"

    @classmethod
    def from_mapping(cls, values: dict, source: str = "training parameters",
                     stamp: bool = False) -> "TrainingParameters":
        """From a mapping with exactly these names; ValueError naming ``source`` and every unknown or missing
        name. ``stamp``: a stamp written earlier, which may lack a parameter added since (read as its
        default); what the notebook hands on now must name every one."""
        _check_names(cls, values, source, defaults_allowed=stamp)
        return cls(**values)

    @classmethod
    def read(cls, checkpoint_dir: str | Path) -> "TrainingParameters":
        """The stamp in ``checkpoint_dir``; FileNotFoundError naming it when absent."""
        path = Path(checkpoint_dir) / PARAMETERS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: that training has not run on this machine")
        return cls.from_mapping(json.loads(path.read_text()), str(path), stamp=True)

    def to_json(self) -> dict:
        """The JSON form written to (and compared with) ``parameters.json``."""
        return json.loads(json.dumps(asdict(self), default=str, sort_keys=True))

    def write(self, checkpoint_dir: str | Path) -> None:
        (Path(checkpoint_dir) / PARAMETERS_FILE).write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))


@dataclass(frozen=True)
class TrainingSummary:
    """``training_summary.json``: one finished training.

    ``loss``, ``seed``; ``epochs`` trained; ``device`` (e.g. ``"cpu"``, ``"cuda"``) and ``precision``
    (``"fp32"`` or ``"bf16 autocast"``); ``best_val_dice`` and the 1-based ``best_epoch`` it came from;
    ``train_images`` in the training split, ``images_per_epoch`` drawn per epoch and ``passes`` over the split
    in all; ``image_size`` (px), ``batch_size``, ``lr`` and ``lr_schedule``; ``plateau``
    (:func:`crack_utils.training.plateau_reached` on its history). Trainings made before that rule became the
    one rule (all committed ones up to converged/'s stage 2) wrote an older one here — the last Dice rose by
    < 0.01 over two epochs —, so the plateau of a committed training is read with
    :func:`crack_utils.training.plateau_status` on its ``history.csv``."""
    loss: str
    seed: int
    epochs: int
    device: str
    precision: str
    best_val_dice: float
    best_epoch: int
    train_images: int
    images_per_epoch: int
    passes: float
    image_size: int
    batch_size: int
    lr: float
    lr_schedule: str
    plateau: bool

    @classmethod
    def read(cls, run_folder: str | Path) -> "TrainingSummary":
        """The summary in a training's run folder; FileNotFoundError naming it when absent, ValueError
        naming every unknown or missing field."""
        path = Path(run_folder) / SUMMARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run notebook 03 for that training first")
        values = json.loads(path.read_text())
        _check_names(cls, values, str(path))
        return cls(**values)

    @staticmethod
    def exists(run_folder: str | Path) -> bool:
        return (Path(run_folder) / SUMMARY_FILE).is_file()
