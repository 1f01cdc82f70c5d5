"""Predict on a split (or any extra images/masks folder) and score the thresholded predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from crack_utils.progress import progress_bar

from crack_utils.augment import normalize
from crack_utils.metrics import METRICS, per_image_scores, pooled_scores
from crack_utils.paper import BATCH_SIZE


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, images: np.ndarray, batch_size: int = BATCH_SIZE,
                          device: torch.device | str = "cpu", progress: bool = True) -> np.ndarray:
    """Crack probabilities float32 (N, S, S) for uint8 images (N, S, S, 3); deterministic (eval mode)."""
    device = torch.device(device)
    model.to(device).eval()
    out = np.empty(images.shape[:3], np.float32)
    for start in progress_bar(range(0, len(images), batch_size), desc="predicting", enabled=progress):
        batch = np.stack([normalize(im) for im in images[start:start + batch_size]])
        x = torch.from_numpy(batch).to(device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out[start:start + len(batch)] = torch.sigmoid(model(x)).float().cpu().numpy()[:, 0]
    return out


def score_predictions(probs: np.ndarray, masks: np.ndarray, keys, threshold: float = 0.5):
    """``(per_image, pooled)``: a per-image DataFrame (``key`` + metrics + counts) and a dict of pooled
    scores plus the per-image means under ``macro_<metric>``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    pred = probs > threshold
    target = masks.astype(bool)
    per_image = per_image_scores(pred, target)
    per_image.insert(0, "key", list(keys))
    pooled = pooled_scores(pred, target)
    pooled.update({f"macro_{k}": float(per_image[k].mean()) for k in METRICS})
    return per_image, pooled


def save_predictions(path, keys, pred: np.ndarray) -> None:
    """Store binary predictions (N, S, S) bit-packed with their keys, for figures built later."""
    pred = np.asarray(pred, dtype=bool)
    np.savez_compressed(path, keys=np.asarray(keys, dtype=str), pred=np.packbits(pred, axis=-1),
                        shape=np.array(pred.shape))


def load_predictions(path, keys=None) -> np.ndarray:
    """Binary predictions saved by :func:`save_predictions`; with ``keys``, those rows in that order."""
    with np.load(path) as saved:
        pred = np.unpackbits(saved["pred"], axis=-1)[..., : int(saved["shape"][2])].astype(bool)
        stored = saved["keys"].tolist()
    if keys is None:
        return pred
    index = {k: i for i, k in enumerate(stored)}
    missing = [k for k in keys if k not in index]
    if missing:
        raise KeyError(f"{path} has no predictions for {missing[:5]}")
    return pred[[index[k] for k in keys]]


def prepare_folder(folder, size: int):
    """Read a dataset folder, a folder of them or the Kaggle layout (see :mod:`crack_utils.datasets`) for
    evaluation at ``size`` px.

    Returns ``(keys, images, masks, problems)``: the usable pairs' keys (``dataset/id``) and arrays, and a
    DataFrame of the pairs that failed validation (with the ``problem`` naming the file).
    """
    from pathlib import Path

    from crack_utils.datasets import scan_datasets
    from crack_utils.preprocess import prepare_arrays
    from crack_utils.validation import validate_pairs

    folder = Path(folder)
    pairs = validate_pairs(scan_datasets(folder).pairs, folder, progress=False)
    ok = pairs[pairs["problem"] == ""]
    images, masks, _ = prepare_arrays(ok, folder, size=size)
    return (ok["dataset"] + "/" + ok["id"]).tolist(), images, masks, pairs[pairs["problem"] != ""]
