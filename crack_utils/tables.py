"""Table 1: metrics x losses, ours beside the paper's, built from the evaluation CSVs alone."""
from __future__ import annotations

import pandas as pd

from crack_utils import paper
from crack_utils.metrics import METRICS

LOSS_LABELS = {"bce": "Binary Cross-Entropy Loss", "dice": "Dice Loss", "distance": "Distance-based Loss"}
METRIC_LABELS = {"precision": "Precision", "recall": "Recall", "f1": "F1 Score", "iou": "IoU", "dice": "Dice"}



def build_table1(scores: pd.DataFrame) -> pd.DataFrame:
    """Long Table 1 from evaluation scores.

    ``scores``: one row per (loss, seed) with the pooled metrics as columns ``precision ... dice`` and the
    per-image means as ``macro_precision ... macro_dice``. Returns columns ``metric, loss, ours_pooled,
    ours_pooled_std, ours_macro, paper, n_seeds`` (std over seeds; NaN for a single seed).
    """
    needed = {"loss", *METRICS, *(f"macro_{m}" for m in METRICS)}
    missing = needed - set(scores.columns)
    if missing:
        raise ValueError(f"scores lack columns {sorted(missing)}")
    rows = []
    for loss, group in scores.groupby("loss", sort=False):
        for metric in METRICS:
            rows.append({
                "metric": metric, "loss": loss,
                "ours_pooled": group[metric].mean(), "ours_pooled_std": group[metric].std(ddof=1),
                "ours_macro": group[f"macro_{metric}"].mean(),
                "paper": paper.TABLE1.get(loss, {}).get(metric, float("nan")),
                "n_seeds": len(group),
            })
    order = {m: i for i, m in enumerate(METRICS)}
    table = pd.DataFrame(rows)
    return table.sort_values(["metric", "loss"], key=lambda s: s.map(order) if s.name == "metric" else s,
                             kind="stable").reset_index(drop=True)


def table1_markdown(table: pd.DataFrame, convention: str = "pooled", protocol: str | None = None) -> str:
    """The paper's shape: rows are metrics, columns ``<loss> (ours)`` and ``<loss> (paper)`` per loss;
    ``protocol`` (e.g. :func:`crack_utils.report.protocol_text`) as a first paragraph, so no reader takes a
    reduced run for the paper's protocol."""
    column = {"pooled": "ours_pooled", "macro": "ours_macro"}[convention]
    losses = list(dict.fromkeys(table["loss"]))
    header = ["Metric"]
    for loss in losses:
        label = LOSS_LABELS.get(loss, loss)
        header += [f"{label} (ours)", f"{label} (paper)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in METRICS:
        cells = [METRIC_LABELS[metric]]
        for loss in losses:
            row = table[(table["metric"] == metric) & (table["loss"] == loss)].iloc[0]
            ours = f"{row[column]:.4f}"
            if row["n_seeds"] > 1 and column == "ours_pooled":
                ours += f" ± {row['ours_pooled_std']:.4f}"
            paper = "" if pd.isna(row["paper"]) else f"{row['paper']:.4f}"
            cells += [ours, paper]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("Ours: scores pooled over all test pixels (micro); F1 and Dice are then equal by definition. "
            if convention == "pooled" else "Ours: per-image scores averaged over test images (macro). ")
    n = int(table["n_seeds"].max())
    note += f"Mean over {n} seed(s)" + (" ± standard deviation." if n > 1 else ".")
    note += " Paper: Özcan & Schmiedecke (2024), Table 1, aggregation not stated."
    head = f"{protocol}\n\n" if protocol else ""
    return head + "\n".join(lines) + "\n\n" + note + "\n"
