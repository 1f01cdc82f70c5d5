"""From an origin repository's label files to the binary masks and ``meta.csv`` rows of the shared layout.

Masks are single-channel uint8 PNGs, 0 = background and 255 = crack, the size of their image. The three
label kinds:

* CFD ``groundTruth/<id>.mat``: ``groundTruth[0, 0]['Segmentation']``, label 2 = crack, 1 = background;
  3 and 4 (22 files: mostly regions enclosed by crack loops) stay background and are recorded in ``meta.csv``;
* the cropped sets' JPEG labels: a pixel is crack when its grey level is > 127;
* the Supervisely class map ``ds/masks_machine/<name>.png``: crack where the value is > 0.

Images are never re-encoded: they are the origin's bytes.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

#: Grey level above which a JPEG label pixel is crack.
JPEG_LABEL_THRESHOLD = 127
CFD_CRACK_LABEL = 2
CFD_BACKGROUND_LABEL = 1

#: ``meta.csv`` columns of every dataset, then the dataset-specific ones.
META_COLUMNS = ["id", "image_file", "mask_file", "w", "h", "mode", "crack_fraction", "crack_darker_by",
                "source_image", "orig_split"]
GRID_COLUMNS = ["grid_row", "grid_col", "grid_n"]
CFD_COLUMNS = ["cfd_extra_labels", "cfd_extra_label_pixels"]


def binary_mask(crack: np.ndarray) -> np.ndarray:
    """A boolean (H, W) crack map as the shared mask: uint8 (H, W), 255 = crack, 0 = background."""
    return np.where(np.asarray(crack, dtype=bool), 255, 0).astype(np.uint8)


def mask_from_jpeg_label(grey: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grey JPEG label -> mask: crack where the grey level is > 127 (JPEG noise around 0
    and 255 is removed)."""
    return binary_mask(np.asarray(grey) > JPEG_LABEL_THRESHOLD)


def mask_from_class_map(classes: np.ndarray) -> np.ndarray:
    """Supervisely ``masks_machine`` class index (H, W), or (H, W, C) with the index repeated -> mask:
    crack where the index is > 0."""
    classes = np.asarray(classes)
    if classes.ndim == 3:
        classes = classes[..., 0]
    return binary_mask(classes > 0)


def mask_from_cfd_segmentation(segmentation: np.ndarray) -> tuple[np.ndarray, list[int], int]:
    """CFD ``Segmentation`` label map (H, W) -> (mask, extra labels, their pixel count). Label 2 is crack,
    1 background; any other label (3, 4: regions enclosed by crack loops, in 4 files a small crack piece)
    is left as background and reported, so the pair can be excluded."""
    segmentation = np.asarray(segmentation)
    extra = segmentation[(segmentation != CFD_CRACK_LABEL) & (segmentation != CFD_BACKGROUND_LABEL)]
    return binary_mask(segmentation == CFD_CRACK_LABEL), sorted(int(v) for v in np.unique(extra)), int(extra.size)


def read_cfd_mat(data: bytes) -> np.ndarray:
    """The ``Segmentation`` array of a CFD ``groundTruth/<id>.mat`` file's bytes."""
    from scipy.io import loadmat

    return loadmat(io.BytesIO(data))["groundTruth"][0, 0]["Segmentation"]


def encode_mask_png(mask: np.ndarray) -> bytes:
    """The PNG bytes of a mask as the shared copy stores it (PIL, mode L, ``optimize=True``): the same
    mask gives the same bytes, so a rebuilt copy can be checked against the checksum list."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def decode_grey(data: bytes) -> np.ndarray:
    """uint8 (H, W) grey levels of an image file's bytes (PIL's ``convert('L')``)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"))


def image_mode_and_size(data: bytes) -> tuple[str, int, int]:
    """(PIL mode, width, height) of an image file's bytes."""
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.width, im.height


def crack_darker_by(grey: np.ndarray, mask: np.ndarray) -> float:
    """Mean grey level outside the crack minus inside it (float32 means, as in SOURCES.md): > 0 when the
    label lies on the dark crack; NaN for an empty (or all-crack) mask."""
    grey = np.asarray(grey).astype(np.float32)
    crack = np.asarray(mask) > 0
    if not crack.any() or crack.all():
        return math.nan
    return float(grey[~crack].mean() - grey[crack].mean())


def meta_row(pair_id: str, image_name: str, image_bytes: bytes, mask: np.ndarray, source_image: str,
             orig_split: str = "", **extra) -> dict:
    """One ``meta.csv`` row (columns :data:`META_COLUMNS`, then ``extra``) for a pair whose image file is
    ``images/<image_name>`` and whose mask is ``masks/<pair_id>.png``."""
    mode, width, height = image_mode_and_size(image_bytes)
    if mask.shape != (height, width):
        raise ValueError(f"{pair_id}: mask is {mask.shape[1]}x{mask.shape[0]}, image {width}x{height}")
    return {"id": pair_id, "image_file": f"images/{image_name}", "mask_file": f"masks/{pair_id}.png",
            "w": width, "h": height, "mode": mode, "crack_fraction": float((mask > 0).mean()),
            "crack_darker_by": crack_darker_by(decode_grey(image_bytes), mask), "source_image": source_image,
            "orig_split": orig_split, **extra}


def format_meta_value(value) -> str:
    """A ``meta.csv`` cell as the shared copy writes it: floats by ``repr`` (``nan`` for NaN), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
