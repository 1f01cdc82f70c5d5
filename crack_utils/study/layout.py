"""The results layout of a study — the one place that knows it.

Under ``results/<name>/``::

    01_data/                    notebook 01: manifest, prepared arrays
    02_distance/                notebook 02: distance maps
    03_train/<tag>/             notebook 03, one per training; <tag> = <name>-seed<k>
    04_evaluate/<tag>/          notebook 04, one per training
    04_evaluate/<name>-epoch<e>-seed<k>/   the best weights as of epoch e (training-length budgets)
    05_report/                  notebook 05; its headline files are published one level up; test_split.npz
    checkpoints/<tag>/          last.pt (resuming), best.pt and best-epoch<e>.pt (weights only)

``<name>`` is a loss of Table 1 or a variant (ablation, peer loss). Every function here takes the
study's results folder (``results/<name>``, absolute or relative to the repository root) and returns
paths under it; nothing is created.
"""
from __future__ import annotations

from pathlib import Path

DATA = "01_data"
DISTANCE = "02_distance"
TRAIN = "03_train"
EVALUATE = "04_evaluate"
REPORT = "05_report"
CHECKPOINTS = "checkpoints"
PREPARED_ARRAYS = "prepared.npz"  # in 01_data/: the resized images and masks (crack_utils.manifest writes it)
COMPACT_TEST_SPLIT = "test_split.npz"  # in 05_report/: what the report reruns from without 01_data's arrays (crack_utils.report_inputs)
STUDY_CONFIG = "study_config.json"  # in results/<name>/: the config the study last ran with (the pipeline writes it)
REPORT_PAGE = "report.html"  # in results/<name>/: the study's index page (crack_utils.study.publishing)

#: Files notebook 05 writes into ``05_report/`` that are published (copied) to ``results/<name>/``.
PUBLISHED = ("table1.csv", "table1.md", "figure2.png", "figure2_errors.png", "training_curves.png",
             "scores.csv", "aggregation_conventions.csv", "table1_stats.csv", "paired_comparisons.csv",
             "claims_summary.csv", "claims.png", "fp_distances.png", "fp_distances.csv", "ablation.csv",
             "alpha_curve.png", "training_length.csv", "training_length.png", "protocol.md",
             "extra_folder_stats.csv", "extra_folder_claims.csv")


def run_tag(name: str, seed: int) -> str:
    """``<name>-seed<k>``: the folder of one training under 03_train/, 04_evaluate/ and checkpoints/."""
    return f"{name}-seed{int(seed)}"


def budget_name(name: str, epoch: int) -> str:
    """Run name of ``name``'s best weights as of ``epoch`` (a training-length budget): ``<name>-epoch<k>``."""
    return f"{name}-epoch{int(epoch)}"


def study_dir(config_name: str) -> str:
    """``results/<config name>``, relative to the repository root."""
    return f"results/{config_name}"


def data_dir(results) -> Path:
    return Path(results) / DATA


def distance_dir(results) -> Path:
    return Path(results) / DISTANCE


def report_dir(results) -> Path:
    return Path(results) / REPORT


def train_dir(results, name: str, seed: int) -> Path:
    """Notebook 03's run folder of training ``name`` with ``seed``."""
    return Path(results) / TRAIN / run_tag(name, seed)


def evaluation_dir(results, name: str, seed: int, epoch: int | None = None) -> Path:
    """Notebook 04's run folder of training ``name`` with ``seed``; with ``epoch``, of its best weights as
    of that epoch (a training-length budget)."""
    run = name if epoch is None else budget_name(name, epoch)
    return Path(results) / EVALUATE / run_tag(run, seed)


def checkpoint_dir(results, name: str, seed: int) -> Path:
    """Where training ``name`` with ``seed`` keeps ``last.pt``, ``best.pt`` and ``best-epoch<e>.pt``."""
    return Path(results) / CHECKPOINTS / run_tag(name, seed)


def run_folder(results, run_name: str) -> Path:
    """The folder of a run named as in the study plan (``"03_train/dice-seed0"``, ``"05_report"``)."""
    return Path(results) / run_name


def read_study_config(results) -> dict:
    """The config a study last ran with (``results/<name>/study_config.json``); FileNotFoundError naming it
    when the study has not run."""
    import json

    path = Path(results) / STUDY_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run that study first (python -m crack_utils.pipeline --config ...)")
    return json.loads(path.read_text())
