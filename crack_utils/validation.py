"""Check every image/mask pair and report problems per pair instead of crashing.

Rules (each a ``problem`` string naming the file; a pair with a problem is excluded, not fatal):

* image missing, unreadable or truncated; mask missing or unreadable;
* image and mask sizes differ;
* mask with several *different* channels (RGB/RGBA colour masks); a mask whose channels are identical
  (grey stored as RGB) is read as grey and noted;
* mask levels: ``{0, 255}`` and ``{0, 1}`` are binary; anything else (JPEG-compressed masks) is
  thresholded at ``> 127`` (``> 0`` for masks whose maximum is 1) and the number of in-between pixels is
  recorded in ``mask_nonbinary_pixels``.

:func:`read_mask` applies the same rules when the data is prepared, so validation and training agree.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from crack_utils.progress import progress_bar

MASK_THRESHOLD = 127


class BadPairError(ValueError):
    """An image or mask that cannot be used; the message names the file."""


def _load_pixels(path: Path, what: str, convert: str | None = None) -> tuple[np.ndarray, str]:
    """Pixels and PIL mode of an image file; :class:`BadPairError` naming the file if it is missing,
    truncated or unreadable. ``what``: ``"image"`` or ``"mask"``, for the message."""
    if not path.is_file():
        raise BadPairError(f"{what} file missing: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert(convert) if convert else im), im.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        kind = "truncated" if "truncated" in str(err).lower() else "unreadable"
        raise BadPairError(f"{kind} {what} file {path}: {err}") from err


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any image file; raises :class:`BadPairError` naming the file."""
    return _load_pixels(Path(path), "image", convert="RGB")[0]


def read_mask(path: str | Path) -> tuple[np.ndarray, dict]:
    """Binary mask bool (H, W) and notes ``{"nonbinary_pixels", "levels", "converted_from"}``.

    Raises :class:`BadPairError` naming the file for a missing/unreadable mask or a colour mask.
    """
    path = Path(path)
    arr, mode = _load_pixels(path, "mask")
    notes = {"converted_from": ""}
    if arr.ndim == 3:
        channels = arr[..., :3]
        if not (channels == channels[..., :1]).all():
            raise BadPairError(
                f"mask {path} is a colour image (mode {mode}); masks must be single-channel "
                "(0 = background, 255 = crack)")
        arr = channels[..., 0]
        notes["converted_from"] = mode
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    levels = np.unique(arr)
    notes["levels"] = "{" + ",".join(str(v) for v in levels[:4]) + ("..." if len(levels) > 4 else "") + "}"
    if arr.max(initial=0) <= 1:
        binary = arr > 0
        notes["nonbinary_pixels"] = 0
    else:
        binary = arr > MASK_THRESHOLD
        notes["nonbinary_pixels"] = int(((arr != 0) & (arr != arr.max())).sum()) if len(levels) > 2 else 0
    return binary, notes


def file_md5(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_pair(image_path: str | Path | None, mask_path: str | Path | None) -> dict:
    """Check one pair; returns ``width, height, crack_fraction, mask_nonbinary_pixels, mask_levels,
    image_md5, problem`` (``problem`` empty when the pair is usable)."""
    out = {"width": np.nan, "height": np.nan, "crack_fraction": np.nan, "mask_nonbinary_pixels": 0,
           "mask_levels": "", "image_md5": "", "problem": ""}
    if not image_path:
        out["problem"] = f"mask {mask_path} has no image (no image file with the same stem)"
        return out
    if not mask_path:
        out["problem"] = f"image {image_path} has no mask (no mask file with the same stem)"
        return out
    try:
        image = read_image(image_path)
        mask, notes = read_mask(mask_path)
    except BadPairError as err:
        out["problem"] = str(err)
        return out
    out["height"], out["width"] = image.shape[:2]
    out["image_md5"] = file_md5(image_path)
    out["mask_nonbinary_pixels"] = notes["nonbinary_pixels"]
    out["mask_levels"] = notes["levels"]
    if mask.shape != image.shape[:2]:
        out["problem"] = (f"size mismatch: image {image_path} is {image.shape[1]}x{image.shape[0]}, "
                          f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]}")
        return out
    out["crack_fraction"] = float(mask.mean())
    return out


def validate_pairs(pairs: pd.DataFrame, data_root: str | Path, progress: bool = True) -> pd.DataFrame:
    """:func:`validate_pair` for every row of a pairs table (paths relative to ``data_root``).

    Adds the result columns and flags duplicate images (same bytes) across the whole table: the first
    occurrence is kept, later ones get the problem ``duplicate of <dataset>/<id>``. Raises
    :class:`BadPairError` naming the folder when a dataset has no usable pair at all.
    """
    data_root = Path(data_root)
    results = []
    for row in progress_bar(pairs.itertuples(index=False), total=len(pairs), desc="validating pairs", enabled=progress):
        image = data_root / row.image_path if row.image_path else None
        mask = data_root / row.mask_path if row.mask_path else None
        results.append(validate_pair(image, mask))
    checked = pd.concat([pairs.reset_index(drop=True), pd.DataFrame(results)], axis=1)
    has_hash = checked["image_md5"] != ""
    first = checked[has_hash].drop_duplicates("image_md5").set_index("image_md5")
    dup = has_hash & checked["image_md5"].duplicated(keep="first") & (checked["problem"] == "")
    for i in checked.index[dup]:
        orig = first.loc[checked.at[i, "image_md5"]]
        checked.at[i, "problem"] = f"duplicate of {orig['dataset']}/{orig['id']} (same image bytes)"
    for dataset, group in checked.groupby("dataset"):
        if (group["problem"] != "").all():
            folder = Path(group["image_path"].iloc[0] or group["mask_path"].iloc[0]).parts[0]
            raise BadPairError(
                f"dataset {dataset!r} ({data_root / folder}) has no valid image/mask pair; first problem: "
                f"{group['problem'].iloc[0]}")
    return checked
