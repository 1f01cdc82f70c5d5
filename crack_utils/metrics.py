"""Segmentation metrics of Table 1 (precision, recall, F1, IoU, Dice) and their aggregation conventions.

All scores come from binary (thresholded) predictions and confusion counts:
``precision = TP/(TP+FP)``, ``recall = TP/(TP+FN)``, ``F1 = 2PR/(P+R)``, ``IoU = TP/(TP+FP+FN)``,
``Dice = 2TP/(2TP+FP+FN)`` (the coefficient of the paper's Eq. 2).

**Zero-denominator rule** (crack-free images), one rule for every metric: a score whose denominator is
zero is **1.0 when there is no crack and nothing was predicted** (nothing to find, nothing claimed) and
**0.0 otherwise**. So a crack-free image with no false positives scores 1 everywhere, a crack-free image
with false positives scores 0 everywhere, and a missed crack gives precision 0.

Aggregation:

* **pooled** (micro): counts summed over all images, then scored. F1 and Dice are then *identical*.
* **per image** (macro): scored per image, then averaged. F1 and Dice are identical per image too.
* **per batch**: pooled within consecutive batches (e.g. the paper's 25), then averaged.

Since F1 = Dice whenever both are computed from the same counts, the paper's F1 ≠ Dice means they were
aggregated differently; :func:`aggregation_conventions` computes the candidates side by side.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from crack_utils.paper import BATCH_SIZE

METRICS: tuple[str, ...] = ("precision", "recall", "f1", "iou", "dice")


def _as_binary_stack(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {x.shape}")
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {x.shape}")
    if x.dtype != bool:
        values = np.unique(x)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must be binary (0/1 or bool); threshold probabilities first")
        x = x.astype(bool)
    return x


def confusion_counts(pred, target) -> pd.DataFrame:
    """Per-image TP, FP, FN, TN of binary ``pred`` vs ``target``, each (N, H, W) or (N, 1, H, W).

    Returns a DataFrame with one row per image and integer columns ``tp, fp, fn, tn``.
    """
    p = _as_binary_stack(pred, "pred")
    t = _as_binary_stack(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} does not match target shape {t.shape}")
    axes = (1, 2)
    tp = (p & t).sum(axis=axes)
    fp = (p & ~t).sum(axis=axes)
    fn = (~p & t).sum(axis=axes)
    tn = (~p & ~t).sum(axis=axes)
    return pd.DataFrame({"tp": tp, "fp": fp, "fn": fn, "tn": tn}).astype("int64")


def _ratio(num, den, nothing_to_do):
    num, den, nothing_to_do = (np.asarray(v, dtype=float) for v in (num, den, nothing_to_do))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), np.where(nothing_to_do > 0, 1.0, 0.0))
    return out


def scores_from_counts(tp, fp, fn) -> dict[str, np.ndarray | float]:
    """The five metrics from confusion counts (scalars or arrays), with the zero-denominator rule."""
    tp, fp, fn = (np.asarray(v, dtype=float) for v in (tp, fp, fn))
    empty = (tp + fp + fn) == 0  # no crack and nothing predicted
    precision = _ratio(tp, tp + fp, empty)
    recall = _ratio(tp, tp + fn, empty)
    f1 = _ratio(2 * precision * recall, precision + recall, empty)
    iou = _ratio(tp, tp + fp + fn, empty)
    dice = _ratio(2 * tp, 2 * tp + fp + fn, empty)
    out = {"precision": precision, "recall": recall, "f1": f1, "iou": iou, "dice": dice}
    if np.ndim(tp) == 0:
        return {k: float(v) for k, v in out.items()}
    return out


SCORE_COLUMNS = ("precision", "recall", "f1", "iou", "dice")


def derived_score_columns(table) -> dict[str, np.ndarray]:
    """The columns of a per-image table (notebook 04's ``per_image.csv``) that its ``tp``, ``fp``, ``fn`` columns
    determine: :data:`SCORE_COLUMNS` by :func:`scores_from_counts` (``{}`` when the counts are absent). The
    committed copy of the table leaves them blank (:mod:`crack_utils.study.committed`)."""
    if not {"tp", "fp", "fn"} <= set(table.columns):
        return {}
    scores = scores_from_counts(table["tp"].to_numpy(), table["fp"].to_numpy(), table["fn"].to_numpy())
    return {name: scores[name] for name in SCORE_COLUMNS}


def pooled_scores(pred, target) -> dict[str, float]:
    """Micro scores: confusion counts summed over all images, then the five metrics.

    ``pred``, ``target``: binary arrays/tensors (N, H, W) or (N, 1, H, W). Returns a dict with keys
    ``precision, recall, f1, iou, dice``. A set with no crack and no prediction scores 1.0.
    """
    c = confusion_counts(pred, target).sum()
    return scores_from_counts(c.tp, c.fp, c.fn)


def per_image_scores(pred, target) -> pd.DataFrame:
    """Macro building block: one row per image with ``precision, recall, f1, iou, dice`` and the counts.

    ``pred``, ``target``: binary (N, H, W) or (N, 1, H, W). Crack-free images follow the module's
    zero-denominator rule (1.0 with no false positive, 0.0 with any). Extra column ``has_crack``.
    """
    counts = confusion_counts(pred, target)
    scores = scores_from_counts(counts.tp, counts.fp, counts.fn)
    frame = pd.DataFrame(scores)
    frame = pd.concat([frame, counts], axis=1)
    frame["has_crack"] = (counts.tp + counts.fn) > 0
    return frame


def per_batch_scores(pred, target, batch_size: int = BATCH_SIZE) -> pd.DataFrame:
    """Scores pooled within consecutive batches of ``batch_size`` images (in the given order), one row each."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    counts = confusion_counts(pred, target)
    batch = np.arange(len(counts)) // batch_size
    summed = counts.groupby(batch).sum()
    return pd.DataFrame(scores_from_counts(summed.tp, summed.fp, summed.fn))


def aggregation_conventions(pred, target, probs=None, batch_size: int = BATCH_SIZE) -> pd.DataFrame:
    """The same predictions scored under each aggregation convention, one row per convention.

    Rows: pooled (micro), per-image mean (macro), per-batch mean, "F1 from mean P and R" (F1 computed
    from macro precision and recall while Dice is averaged per image), and, when ``probs`` (N, H, W)
    probabilities are given, "soft Dice per batch" (Dice on probabilities, as Keras-style code often
    does, next to thresholded F1). Columns are the five metrics; the F1 − Dice gap shows which
    conventions can separate the two.
    """
    rows = {}
    rows["pooled (micro)"] = pooled_scores(pred, target)
    per_image = per_image_scores(pred, target)
    rows["per-image mean (macro)"] = per_image[list(METRICS)].mean().to_dict()
    rows[f"per-batch mean (batch {batch_size})"] = per_batch_scores(pred, target, batch_size).mean().to_dict()
    macro = dict(rows["per-image mean (macro)"])
    p, r = macro["precision"], macro["recall"]
    macro["f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    rows["F1 from mean P, R; Dice per image"] = macro
    if probs is not None:
        if hasattr(probs, "detach"):
            probs = probs.detach().cpu().numpy()
        probs = np.asarray(probs, dtype=float).reshape(len(per_image), -1)
        t = _as_binary_stack(target, "target").reshape(len(per_image), -1).astype(float)
        batch = np.arange(len(per_image)) // batch_size
        soft = []
        for b in np.unique(batch):
            pb, tb = probs[batch == b], t[batch == b]
            soft.append((2 * (pb * tb).sum() + 1.0) / (pb.sum() + tb.sum() + 1.0))
        row = dict(rows[f"per-batch mean (batch {batch_size})"])
        row["dice"] = float(np.mean(soft))
        rows[f"soft Dice per batch, hard F1 (batch {batch_size})"] = row
    frame = pd.DataFrame(rows).T[list(METRICS)]
    frame["f1_minus_dice"] = frame["f1"] - frame["dice"]
    frame.index.name = "convention"
    return frame
