"""Metrics that test the paper's claims: far false positives, continuity, tolerance F1, clDice.

All take binary ``pred`` and ``target`` masks of one image, (H, W), and return plain numbers.

* **Far false positives** (the Distance-based Loss should suppress them): the Euclidean distance in
  pixels from every false-positive pixel to the nearest true crack pixel; on a crack-free image every
  false positive is infinitely far (counted as far under any threshold), the same rule as the maps.
* **Continuity**: 8-connected components of prediction and ground truth; the Betti-0 error
  ``|b0(pred) - b0(target)|``; fragmentation ``b0(pred) / b0(target)`` (NaN without a true crack).
* **Tolerance F1** (crack benchmarks): a predicted pixel within ``radius`` px of a true crack pixel counts
  as correct, and a true pixel within ``radius`` px of a prediction as found.
* **clDice** (Shit et al., CVPR 2021): ``2·Tprec·Tsens / (Tprec + Tsens)`` with ``Tprec = |S(P) ∩ G| /
  |S(P)|`` and ``Tsens = |S(G) ∩ P| / |S(G)|``; ``S`` is the morphological (Lantuéjoul) skeleton computed
  with scipy. A perfect prediction scores 1.

Zero denominators follow :mod:`crack_utils.metrics`: 1.0 when there is no crack and nothing predicted,
0.0 otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from crack_utils.distance import DEFAULT_RADIUS

EIGHT = np.ones((3, 3), bool)


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred).astype(bool), np.asarray(target).astype(bool)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"pred and target must be (H, W) masks of one shape, got {pred.shape} and {target.shape}")
    return pred, target


def false_positive_distances(pred, target) -> np.ndarray:
    """Distances (pixels) of the false-positive pixels to the nearest true crack pixel (``inf`` on
    crack-free images)."""
    pred, target = _pair(pred, target)
    fp = pred & ~target
    if not target.any():
        return np.full(int(fp.sum()), np.inf)
    return ndimage.distance_transform_edt(~target)[fp]


def components(mask) -> int:
    """Number of 8-connected components (Betti-0) of a binary (H, W) mask."""
    return int(ndimage.label(np.asarray(mask).astype(bool), structure=EIGHT)[1])


def skeleton(mask) -> np.ndarray:
    """Morphological skeleton (Lantuéjoul): union over k of ``E^k(X) minus opening(E^k(X))``."""
    x = np.asarray(mask).astype(bool)
    cross = ndimage.generate_binary_structure(2, 1)
    out = np.zeros_like(x)
    while x.any():
        opened = ndimage.binary_opening(x, structure=cross, border_value=0)
        out |= x & ~opened
        x = ndimage.binary_erosion(x, structure=cross, border_value=0)
    return out


def _ratio(num: float, den: float, nothing: bool) -> float:
    return float(num / den) if den > 0 else (1.0 if nothing else 0.0)


def cldice(pred, target) -> float:
    """clDice of one image (1.0 for a perfect prediction; zero-denominator rule as the metrics)."""
    pred, target = _pair(pred, target)
    nothing = not pred.any() and not target.any()
    sp, st = skeleton(pred), skeleton(target)
    tprec = _ratio((sp & target).sum(), sp.sum(), nothing)
    tsens = _ratio((st & pred).sum(), st.sum(), nothing)
    return _ratio(2 * tprec * tsens, tprec + tsens, nothing)


def tolerance_f1(pred, target, radius: float = 2.0) -> dict[str, float]:
    """Precision, recall and F1 with a matching radius of ``radius`` px (Euclidean)."""
    pred, target = _pair(pred, target)
    nothing = not pred.any() and not target.any()
    near_target = ndimage.distance_transform_edt(~target) <= radius if target.any() else np.zeros_like(target)
    near_pred = ndimage.distance_transform_edt(~pred) <= radius if pred.any() else np.zeros_like(pred)
    precision = _ratio((pred & near_target).sum(), pred.sum(), nothing)
    recall = _ratio((target & near_pred).sum(), target.sum(), nothing)
    return {"tol_precision": precision, "tol_recall": recall,
            "tol_f1": _ratio(2 * precision * recall, precision + recall, nothing)}


#: Distances (px) beyond which a false-positive pixel counts as far: near the crack, and at the distance maps'
#: default radius, where Eq. 2's penalty stops growing (the ``fp_far_<d>px`` columns).
FAR_DISTANCES_PX: tuple[float, ...] = (5.0, DEFAULT_RADIUS)


def claim_scores(pred, target, far: tuple[float, ...] = FAR_DISTANCES_PX, radius: float = 2.0) -> dict[str, float]:
    """Every claim metric of one image as a flat dict (see the module docstring)."""
    pred, target = _pair(pred, target)
    d = false_positive_distances(pred, target)
    b_pred, b_true = components(pred), components(target)
    out = {"fp_pixels": int(d.size)}
    for t in far:
        out[f"fp_far_{t:g}px"] = int((d > t).sum())
        out[f"fp_far_{t:g}px_share"] = float((d > t).mean()) if d.size else 0.0
    out.update({"components_pred": b_pred, "components_true": b_true, "betti0_error": abs(b_pred - b_true),
                "fragmentation": b_pred / b_true if b_true else float("nan"), "cldice": cldice(pred, target)})
    out.update(tolerance_f1(pred, target, radius))
    return out


def derived_claim_columns(table) -> dict[str, np.ndarray]:
    """The columns of a claim table (:func:`claim_table`, notebook 04's ``claims.csv``) that its counts
    determine, for those whose sources are present: ``fp_far_<d>px_share`` = ``fp_far_<d>px / fp_pixels``
    (0 without false positives), ``betti0_error`` = ``|components_pred − components_true|`` and
    ``fragmentation`` = ``components_pred / components_true`` (NaN without a true crack), computed as
    :func:`claim_scores` does. The committed copy of the table leaves them blank
    (:mod:`crack_utils.study.committed`)."""
    columns = set(table.columns)
    out = {}
    if "fp_pixels" in columns:
        fp = table["fp_pixels"].to_numpy()
        for name in sorted(columns):
            if name.startswith("fp_far_") and name.endswith("px") and f"{name}_share" in columns:
                far = table[name].to_numpy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[f"{name}_share"] = np.where(fp > 0, far / np.where(fp > 0, fp, 1), 0.0)
    if {"components_pred", "components_true"} <= columns:
        pred, true = table["components_pred"].to_numpy(), table["components_true"].to_numpy()
        out["betti0_error"] = np.abs(pred - true)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["fragmentation"] = np.where(true > 0, pred / np.where(true > 0, true, 1), np.nan)
    return out


def claim_table(pred: np.ndarray, target: np.ndarray, keys=None, **kwargs) -> pd.DataFrame:
    """:func:`claim_scores` for a stack (N, H, W), one row per image (``key`` first when given)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"pred and target must be (N, H, W) of one shape, got {pred.shape} and {target.shape}")
    frame = pd.DataFrame([claim_scores(p, t, **kwargs) for p, t in zip(pred, target)])
    if keys is not None:
        frame.insert(0, "key", list(keys))
    return frame
