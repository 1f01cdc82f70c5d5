"""Check every image/mask pair and report problems per pair instead of crashing.

Rules (each a ``problem`` string naming the file; a pair with a problem is excluded, not fatal):

* image missing, unreadable or truncated; mask missing or unreadable;
* image and mask sizes differ (after turning a phone photo by its EXIF orientation when that makes them
  agree, see :func:`read_pair`);
* mask with several *different* channels (RGB/RGBA colour masks); a mask whose channels are identical
  (grey stored as RGB) is read as grey and noted; palette masks are read through their palette;
* mask levels: a mask with one non-zero level (``{0, 255}``, ``{0, 1}``, 16-bit ``{0, 65535}``) is
  binary; anything else (JPEG-compressed masks) is thresholded at ``> 127`` (half the maximum for other
  bit depths) and the number of in-between pixels is recorded in ``mask_nonbinary_pixels``.

:func:`read_pair` applies the same rules when the data is prepared, so validation and training agree.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from crack_utils.progress import progress_bar

MASK_THRESHOLD = 127
ORIENTATION_TAG = 0x0112  # EXIF orientation
GREY_TOLERANCE = 8  # RGB masks whose channels differ by at most this much (compression noise) are grey


class BadPairError(ValueError):
    """An image or mask that cannot be used; the message names the file."""


def _open(path: Path, what: str) -> Image.Image:
    """The decoded image at ``path``; :class:`BadPairError` naming the file if it is missing, truncated or
    unreadable. ``what``: ``"image"`` or ``"mask"``, for the message."""
    if path.is_symlink() and not path.exists():
        raise BadPairError(f"{what} {path} is a broken symbolic link: it points to {os.readlink(path)}, "
                           "which does not exist")
    if not path.is_file():
        raise BadPairError(f"{what} file missing: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode != "P" else im.convert("RGBA" if "transparency" in im.info else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        kind = "truncated" if "truncated" in str(err).lower() else "unreadable"
        raise BadPairError(f"{kind} {what} file {path}: {err}") from err


def _image_pixels(im: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3); 16-bit and float grey images are scaled to 0-255 (not clipped)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any image file (grey, RGBA, CMYK, palette, 16-bit grey); raises
    :class:`BadPairError` naming the file. The pixels are stored ones: EXIF orientation is applied only
    by :func:`read_pair`, where the mask's size shows it is needed."""
    return _image_pixels(_open(Path(path), "image"))


def read_mask(path: str | Path) -> tuple[np.ndarray, dict]:
    """Binary mask bool (H, W) and notes ``{"nonbinary_pixels", "levels", "converted_from"}``.

    Grey masks of any bit depth; palette masks are read through their palette (the colour shown, not the
    index); a grey + alpha mask uses its grey channel; RGB(A) masks whose three channels agree (within
    :data:`GREY_TOLERANCE`, for compression noise) are grey.
    Levels: a mask with one non-zero level (``{0, 255}``, ``{0, 1}``, ``{0, 38}``) marks every non-zero
    pixel as crack; masks with more levels (JPEG noise) are thresholded at ``> 127`` for 8 bits
    (``> max / 2`` for other depths, or when the maximum is below 128) and the in-between pixels are
    counted in ``nonbinary_pixels``. Raises :class:`BadPairError` naming the file for a missing or
    unreadable mask or a colour mask.
    """
    path = Path(path)
    im = _open(path, "mask")
    mode = im.mode
    notes = {"converted_from": ""}
    if mode in ("LA", "La", "PA"):
        im = im.convert("L") if mode != "PA" else im.convert("RGB")
        notes["converted_from"] = mode
    arr = np.asarray(im)
    if arr.ndim == 3:
        channels = arr[..., :3].astype(np.int32)
        if int((channels.max(axis=-1) - channels.min(axis=-1)).max(initial=0)) > GREY_TOLERANCE:
            raise BadPairError(
                f"mask {path} is a colour image (mode {mode}): masks must be single-channel "
                "(0 = background, 255 = crack)")
        arr = np.round(channels.mean(axis=-1)).astype(arr.dtype)
        notes["converted_from"] = mode
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    levels = np.unique(arr)
    notes["levels"] = "{" + ",".join(f"{v:g}" for v in levels[:4]) + ("..." if len(levels) > 4 else "") + "}"
    top = arr.max(initial=0)
    if (len(levels) <= 2 and levels[0] == 0) or top <= 1:
        binary = arr > 0
        notes["nonbinary_pixels"] = 0
    else:
        threshold = MASK_THRESHOLD if arr.dtype == np.uint8 and top > MASK_THRESHOLD else top / 2
        binary = arr > threshold
        notes["nonbinary_pixels"] = int(((arr != 0) & (arr != top)).sum()) if len(levels) > 2 else 0
    return binary, notes


def read_pair(image_path: str | Path, mask_path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(image, mask, notes)`` as :func:`read_image` and :func:`read_mask`, plus ``notes["exif_rotated"]``.

    A phone photo may be stored sideways with an EXIF orientation tag that viewers (and labelling tools)
    apply: when the stored image and the mask differ in size but the image turned by its EXIF tag matches
    the mask, the turned image is used. Sizes may still differ; :func:`validate_pair` reports that.
    """
    im = _open(Path(image_path), "image")
    mask, notes = read_mask(mask_path)
    notes["exif_rotated"] = False
    if (im.height, im.width) != mask.shape and im.getexif().get(ORIENTATION_TAG, 1) != 1:
        turned = ImageOps.exif_transpose(im)
        if (turned.height, turned.width) == mask.shape:
            im, notes["exif_rotated"] = turned, True
    return _image_pixels(im), mask, notes


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
           "mask_levels": "", "image_md5": "", "exif_rotated": False, "problem": ""}
    if not image_path:
        out["problem"] = f"mask {mask_path} has no image (no image file with the same name under images/)"
        return out
    if not mask_path:
        out["problem"] = f"image {image_path} has no mask (no mask file with the same name under masks/)"
        return out
    try:
        image, mask, notes = read_pair(image_path, mask_path)
    except BadPairError as err:
        out["problem"] = str(err)
        return out
    out["height"], out["width"] = image.shape[:2]
    out["image_md5"] = file_md5(image_path)
    out["mask_nonbinary_pixels"] = notes["nonbinary_pixels"]
    out["mask_levels"] = notes["levels"]
    out["exif_rotated"] = notes["exif_rotated"]
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
    :class:`BadPairError` naming each folder when no dataset has a usable pair at all (a dataset with
    nothing usable next to others that have pairs is reported by :mod:`crack_utils.data_report`).
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
    usable = checked["problem"] == ""
    if len(checked) and not usable.any():
        raise BadPairError("\n".join(
            f"dataset {dataset!r} (under {data_root}) has no valid image/mask pair; first problem: "
            f"{group['problem'].iloc[0]}" for dataset, group in checked.groupby("dataset")))
    return checked
