"""Resize pairs to the study size once and cache them, so training never decodes full images per epoch.

* Images: bicubic (the paper's choice), via Pillow.
* Masks: **area-average, then threshold** at ``0.5 / s``, where ``s >= 1`` is the largest per-axis
  down-scaling factor. An output pixel is crack when at least half a source pixel's worth of crack
  crosses it, so a 1-px crack survives a 3.5x reduction (its coverage of ~1/s per output pixel passes)
  while isolated JPEG specks do not grow. For up-scaling (s = 1) the threshold is the usual 0.5.
  Never bilinear-then-``> 0``, which thickens every crack.
* Non-square images are resized to the square study size (aspect ratio not kept), as in the paper.

The cache is one ``.npz`` with ``images`` uint8 (N, S, S, 3), ``masks`` uint8 (N, S, S) in {0, 1} and
``ids`` (N,), in manifest order, written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from crack_utils.paper import IMAGE_SIZE
from crack_utils.progress import progress_bar

from crack_utils.validation import read_pair


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of an RGB uint8 (H, W, 3) image to (size, size, 3)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def mask_threshold(src_shape: tuple[int, int], size: int) -> float:
    """Coverage threshold ``0.5 / s`` for a mask of ``src_shape`` (H, W) resized to (size, size)."""
    s = max(src_shape[0] / size, src_shape[1] / size, 1.0)
    return 0.5 / s


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a binary (H, W) mask to (size, size) by area-average then threshold; uint8 in {0, 1}."""
    mask = np.asarray(mask).astype(np.float32)
    if mask.max(initial=0) > 1:
        mask = mask / mask.max()
    coverage = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    keep = (coverage > 0) & (coverage >= mask_threshold(mask.shape, size) - 1e-6)
    return keep.astype(np.uint8)


def label_statistics(image: np.ndarray, mask: np.ndarray) -> dict:
    """Screening statistics of a pair at study resolution.

    ``darker_by``: mean grey outside the crack minus inside (> 0 for aligned labels; NaN without crack).
    ``mean_width``: estimated crack width in pixels, ``2·median(EDT on the medial ridge) - 1``.
    ``crack_fraction``: share of crack pixels. ``components``: 8-connected crack components.
    """
    grey = image.astype(np.float32).mean(axis=2)
    crack = mask.astype(bool)
    stats = {"crack_fraction": float(crack.mean()), "darker_by": np.nan, "mean_width": 0.0, "components": 0}
    if crack.any() and (~crack).any():
        stats["darker_by"] = float(grey[~crack].mean() - grey[crack].mean())
    if crack.any():
        edt = ndimage.distance_transform_edt(crack)
        ridge = crack & (edt >= ndimage.maximum_filter(edt, size=3))
        stats["mean_width"] = float(2 * np.median(edt[ridge]) - 1)
        stats["components"] = int(ndimage.label(crack, structure=np.ones((3, 3)))[1])
    return stats


def prepare_arrays(manifest: pd.DataFrame, data_root: str | Path, size: int = IMAGE_SIZE,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Read, resize and return ``(images, masks, stats)`` for every row of ``manifest`` (in order).

    ``images`` uint8 (N, size, size, 3), ``masks`` uint8 (N, size, size) in {0, 1}; ``stats`` one row of
    :func:`label_statistics` per pair. Rows must be valid pairs (run validation first).
    """
    data_root = Path(data_root)
    n = len(manifest)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    stats = []
    rows = manifest[["image_path", "mask_path"]].itertuples(index=False)
    for i, (image_path, mask_path) in enumerate(progress_bar(rows, total=n, desc=f"resizing to {size}px", enabled=progress)):
        image, mask, _ = read_pair(data_root / image_path, data_root / mask_path)
        images[i] = resize_image(image, size)
        masks[i] = resize_mask(mask, size)
        stats.append(label_statistics(images[i], masks[i]))
    return images, masks, pd.DataFrame(stats, index=manifest.index)


def save_cache(path: str | Path, images: np.ndarray, masks: np.ndarray, ids) -> Path:
    """Write the prepared arrays to ``path`` (.npz) atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, masks=masks, ids=np.asarray(ids, dtype=str))
    os.replace(tmp, path)
    return path


def load_cache(path: str | Path, ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load ``(images, masks, ids)``; with ``ids``, only those rows, in that order (KeyError names a missing id)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prepared data {path} not found; run the data notebook (01) first")
    with np.load(path) as data:
        images, masks, all_ids = data["images"], data["masks"], data["ids"]
    if ids is None:
        return images, masks, all_ids
    index = {k: i for i, k in enumerate(all_ids)}
    missing = [k for k in ids if k not in index]
    if missing:
        raise KeyError(f"ids not in {path}: {missing[:5]}")
    rows = np.array([index[k] for k in ids], dtype=int)
    return images[rows], masks[rows], np.asarray(ids, dtype=str)
