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

import re
from pathlib import Path

RESULTS = "results"  # under the repository root: one folder per study
DATA = "01_data"
DISTANCE = "02_distance"
TRAIN = "03_train"
EVALUATE = "04_evaluate"
REPORT = "05_report"
GENERALIZATION = "06_generalization"  # in results/<summary>/: notebook 06 across leave-one-dataset-out studies
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


def parse_tag(tag: str) -> tuple[str, int]:
    """The inverse of :func:`run_tag`: ``"cldice-seed0"`` -> ``("cldice", 0)``; ValueError for another form."""
    match = re.fullmatch(r"(.+)-seed(\d+)", str(tag))
    if match is None:
        raise ValueError(f"{tag!r} is not a run tag of the form <name>-seed<k> (e.g. dice-seed0)")
    return match.group(1), int(match.group(2))


def budget_name(name: str, epoch: int) -> str:
    """Run name of ``name``'s best weights as of ``epoch`` (a training-length budget): ``<name>-epoch<k>``."""
    return f"{name}-epoch{int(epoch)}"


def study_dir(config_name: str, root=RESULTS) -> str:
    """``results/<config name>``, relative to the repository root (or ``<root>/<config name>`` for studies
    kept under another folder of results)."""
    return f"{Path(root).as_posix()}/{config_name}"


def budget_run(name: str, epoch: int, trained_epochs: int, checkpoint: str) -> str:
    """The evaluation run (name) that holds ``name``'s best weights as of ``epoch``: the finished training's
    own evaluation when it trained exactly ``epoch`` epochs and is scored with its best checkpoint (no
    separate run is made for that budget), else :func:`budget_name`. The pipeline plans budget runs by this
    rule and the training-length table reads them by it."""
    if int(epoch) == int(trained_epochs) and checkpoint == "best":
        return name
    return budget_name(name, epoch)


def data_dir(results) -> Path:
    """Notebook 01's run folder: the manifest and the prepared arrays."""
    return Path(results) / DATA


def distance_dir(results) -> Path:
    """Notebook 02's run folder: the distance maps."""
    return Path(results) / DISTANCE


def report_dir(results) -> Path:
    """Notebook 05's run folder (its headline files are published one level up)."""
    return Path(results) / REPORT


def train_run(name: str, seed: int) -> str:
    """Run name (relative to the study folder) of notebook 03's training ``name`` with ``seed``."""
    return f"{TRAIN}/{run_tag(name, seed)}"


def evaluation_run(name: str, seed: int, epoch: int | None = None) -> str:
    """Run name of notebook 04's evaluation of training ``name`` with ``seed``; with ``epoch``, of its best
    weights as of that epoch (a training-length budget)."""
    return f"{EVALUATE}/{run_tag(name if epoch is None else budget_name(name, epoch), seed)}"


def train_dir(results, name: str, seed: int) -> Path:
    """Notebook 03's run folder of training ``name`` with ``seed``."""
    return Path(results) / train_run(name, seed)


def evaluation_dir(results, name: str, seed: int, epoch: int | None = None) -> Path:
    """Notebook 04's run folder of training ``name`` with ``seed``; with ``epoch``, of its best weights as
    of that epoch (a training-length budget)."""
    return Path(results) / evaluation_run(name, seed, epoch)


def checkpoint_dir(results, name: str, seed: int) -> Path:
    """Where training ``name`` with ``seed`` keeps ``last.pt``, ``best.pt`` and ``best-epoch<e>.pt``."""
    return Path(results) / CHECKPOINTS / run_tag(name, seed)


def read_study_config(results) -> dict:
    """The config a study last ran with (``results/<name>/study_config.json``); FileNotFoundError naming it
    when the study has not run."""
    import json

    path = Path(results) / STUDY_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run that study first (python -m crack_utils.pipeline --config ...)")
    return json.loads(path.read_text())


def shell_assignments(config_name: str) -> str:
    """The layout of study ``config_name`` as shell variable assignments, for the scripts in ``scripts/``
    (``eval "$(python -m crack_utils.study.layout <name>)"``): ``study``, ``data_dir``, ``prepared``,
    ``distance_dir``, ``checkpoints`` (paths relative to the repository root) and the folder names
    ``DATA``, ``DISTANCE``, ``CHECKPOINTS``."""
    import shlex

    study = study_dir(config_name)
    values = {"study": study, "data_dir": data_dir(study).as_posix(),
              "prepared": (data_dir(study) / PREPARED_ARRAYS).as_posix(),
              "distance_dir": distance_dir(study).as_posix(), "checkpoints": (Path(study) / CHECKPOINTS).as_posix(),
              "DATA": DATA, "DISTANCE": DISTANCE, "CHECKPOINTS": CHECKPOINTS}
    return "\n".join(f"{key}={shlex.quote(value)}" for key, value in values.items())


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m crack_utils.study.layout <study name>  (prints the study's paths as shell assignments)")
    print(shell_assignments(sys.argv[1]))
