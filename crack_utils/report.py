"""Study-level summaries built from the evaluation outputs (CSV/JSON) of notebook 04, for notebook 05."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from crack_utils.metrics import METRICS
from crack_utils.stats import paired_comparison, seed_summary


def _evaluation_dir(results: Path, loss: str, seed: int) -> Path:
    return Path(results) / "04_evaluate" / f"{loss}-seed{seed}"


def seed_statistics(scores: pd.DataFrame) -> pd.DataFrame:
    """Per loss and metric (pooled and macro): mean, std and 95 % t-interval over seeds.

    ``scores``: one row per (loss, seed) with the pooled metrics and ``macro_<metric>`` columns.
    """
    rows = []
    for loss, group in scores.groupby("loss", sort=False):
        for column in [*METRICS, *(f"macro_{m}" for m in METRICS)]:
            rows.append({"loss": loss, "metric": column, **seed_summary(group[column])})
    return pd.DataFrame(rows)


def paired_comparisons(results, losses, seeds, reference: str = "distance", metric: str = "dice") -> pd.DataFrame:
    """``reference`` against every other loss on per-image ``metric`` (averaged over seeds per image)."""
    if reference not in losses:
        return pd.DataFrame(columns=["comparison", "metric", "mean_diff", "ci_low", "ci_high", "wilcoxon_p", "n_images"])
    per_loss = {}
    for loss in losses:
        frames = [pd.read_csv(_evaluation_dir(results, loss, s) / "per_image.csv") for s in seeds]
        per_loss[loss] = pd.concat(frames).groupby("key")[metric].mean()
    rows = []
    for other in losses:
        if other == reference:
            continue
        joined = pd.concat([per_loss[reference], per_loss[other]], axis=1, keys=["a", "b"]).dropna()
        rows.append({"comparison": f"{reference} - {other}", "metric": f"per-image {metric}",
                     **paired_comparison(joined["a"], joined["b"])})
    return pd.DataFrame(rows)


def load_claims(results, losses, seeds) -> pd.DataFrame:
    """All per-image claim metrics (notebook 04's ``claims.csv``) with ``loss`` and ``seed`` columns."""
    frames = [pd.read_csv(_evaluation_dir(results, loss, s) / "claims.csv").assign(loss=loss, seed=s)
              for loss in losses for s in seeds]
    return pd.concat(frames, ignore_index=True)


def summarize_claims(claim_rows: pd.DataFrame) -> pd.DataFrame:
    """Per loss: pooled far-FP shares, mean Betti-0 error, mean clDice and mean tolerance F1."""
    rows = []
    for loss, g in claim_rows.groupby("loss", sort=False):
        fp = max(int(g["fp_pixels"].sum()), 1)
        rows.append({"loss": loss, "fp_pixels": int(g["fp_pixels"].sum()),
                     "fp_far_5px_share": g["fp_far_5px"].sum() / fp, "fp_far_20px_share": g["fp_far_20px"].sum() / fp,
                     "betti0_error_mean": g["betti0_error"].mean(), "cldice_mean": g["cldice"].mean(),
                     "tol_f1_mean": g["tol_f1"].mean(), "n_images": len(g)})
    return pd.DataFrame(rows)
