"""The training-length study: the same trainings scored at several budgets (passes over the training split).

A training run with ``training.snapshot_epochs: [k1, k2, ...]`` keeps the best weights as of each epoch
``k`` (``checkpoints/<tag>/best-epoch<k>.pt``, see :mod:`crack_utils.training`), and the pipeline evaluates
each like a finished training into ``04_evaluate/<name>-epoch<k>-seed<s>/``. With the paper's constant
learning rate this equals separate trainings of ``k`` epochs (same seeded streams), at the cost of one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from crack_utils.report import run_summary
from crack_utils.study.freshness import METADATA
from crack_utils.study.layout import budget_run as planned_budget_run, evaluation_dir, train_dir
from crack_utils.training import plateau_status
from crack_utils.training_records import TrainingSummary

COLUMNS = ("loss", "seed", "epochs", "passes", "best_epoch", "precision", "recall", "f1", "iou", "dice",
           "fp_far_5px_share", "fp_far_20px_share", "betti0_error_mean", "cldice_mean", "tol_f1_mean", "n_test")


def budget_run(results, name: str, seed: int, epoch: int) -> str:
    """The evaluation run that holds ``name``'s best weights as of ``epoch``: the finished training's own
    evaluation when it trained exactly ``epoch`` epochs and was scored with its best checkpoint (the
    pipeline then makes no separate budget run), else ``<name>-epoch<k>`` — the rule of
    :func:`crack_utils.study.layout.budget_run`, read from what the training and its evaluation recorded."""
    final = evaluation_dir(results, name, seed) / "scores.json"
    trained = TrainingSummary.read(train_dir(results, name, seed)).epochs
    return planned_budget_run(name, epoch, trained, json.loads(final.read_text()).get("checkpoint"))


def passes_per_epoch(results, name: str, seed: int) -> float:
    """Passes over the training split that one epoch of training ``<name>-seed<seed>`` made:
    ``SAMPLES_PER_EPOCH / training images`` (1.0 when every epoch draws the whole split)."""
    folder = train_dir(results, name, seed)
    n_train = TrainingSummary.read(folder).train_images
    per_epoch = json.loads((folder / METADATA).read_text())["parameters"]["SAMPLES_PER_EPOCH"]
    return 1.0 if per_epoch is None else min(int(per_epoch), n_train) / n_train


def training_length_table(results, names, seeds, budget_epochs) -> pd.DataFrame:
    """One row per training (``names`` × ``seeds``) and budget (``budget_epochs``), columns :data:`COLUMNS`.

    ``passes`` = epochs × passes per epoch; ``best_epoch`` the epoch whose weights the budget evaluated
    (best validation Dice up to the budget); metrics pooled over the test split, claim summaries as in
    :func:`crack_utils.report.summarize_claims`.
    """
    rows = []
    for name in names:
        for seed in seeds:
            per_epoch = passes_per_epoch(results, name, seed)
            for epoch in sorted(budget_epochs):
                run = budget_run(results, name, seed, epoch)
                scores = json.loads((evaluation_dir(results, run, seed) / "scores.json").read_text())
                rows.append({"loss": name, "seed": seed, "epochs": int(epoch), "passes": epoch * per_epoch,
                             "best_epoch": int(scores["epoch"]), **run_summary(results, run, [seed])})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def ranking_by_budget(table: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Losses ordered by ``metric`` (mean over seeds) at each budget: one row per budget, ``rank_1`` the best."""
    means = table.groupby(["passes", "loss"], sort=True)[metric].mean().reset_index()
    rows = []
    for passes, group in means.groupby("passes"):
        ordered = group.sort_values(metric, ascending=False)
        rows.append({"passes": passes, **{f"rank_{i + 1}": f"{r.loss} ({getattr(r, metric):.3f})"
                                          for i, r in enumerate(ordered.itertuples())}})
    return pd.DataFrame(rows)


def plateau_table(results, names, seeds) -> pd.DataFrame:
    """:func:`plateau_status` of every finished training of ``names`` × ``seeds`` under ``results``."""
    rows = []
    for name in names:
        for seed in seeds:
            path = train_dir(results, name, seed) / "history.csv"
            if path.is_file():
                rows.append({"loss": name, "seed": seed, **plateau_status(pd.read_csv(path))})
    return pd.DataFrame(rows, columns=["loss", "seed", "epochs", "best", "best_before", "gain", "plateau"])
