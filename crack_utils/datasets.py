"""Find image/mask pairs on disk and list them in one table (the start of the manifest).

Three layouts are understood, detected per dataset folder:

* ``meta``: ``<dataset>/images``, ``<dataset>/masks`` and ``<dataset>/meta.csv`` (columns ``id,
  image_file, mask_file`` and optionally ``source_image, orig_split``), as in ``../shared/data`` and the
  synthetic data;
* ``folder``: any ``images/`` + ``masks/`` pair, paired by file stem (masks PNG);
* ``kaggle``: the Kaggle crack segmentation dataset, ``train|test/images|masks``, paired by stem.

Paths in the returned table are relative to the data root (never absolute), so a manifest stays valid
when the data moves. ``source_group`` names the photo a pair was cut from (``source_image`` where a
``meta.csv`` gives it, else derived from the file name by :func:`derive_source_group`); the split keeps
every group in one split.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
LAYOUTS = ("auto", "meta", "folder", "kaggle")
PAIR_COLUMNS = ["dataset", "id", "image_path", "mask_path", "source_group", "orig_split"]

# Photos of S. Chambon's crack database (AigleRN, ESAR, LCMS, LRIS, TEMPEST2) appear in two shared datasets
# under two spellings: "LCMS_31c" (aiglern_trimm_lmm) and "Im_GT_LCMS_31cor" (alexdonchuk_coarse). One
# canonical name keeps both copies of a photo in one split (see ../shared/data/SOURCES.md).
_CHAMBON = re.compile(r"^(?:Im_(?:no)?GT_)?((?:AIGLE_RN|ESAR|LCMS|LRIS|TEMPEST2?)_\w+?)(?:or)?$")


class DatasetError(ValueError):
    """A dataset folder that cannot be read; the message names the folder or file."""


def derive_source_group(stem: str) -> str:
    """Best guess of the source photo from a patch's file stem.

    Strips a trailing patch index, e.g. ``CRACK500_20160222_080850_1_361`` -> ``CRACK500_20160222_080850``,
    ``11111-10`` -> ``11111``; stems without such a suffix are their own group.
    """
    group = re.sub(r"(_\d+_\d+|-\d+)$", "", stem)
    return group or stem


def canonical_source_group(group: str) -> str:
    """One name for a photo known under several spellings (Chambon database: ``Im_GT_LCMS_31cor`` and
    ``LCMS_31c`` -> ``chambon:LCMS_31c``); other groups are returned unchanged."""
    match = _CHAMBON.match(group)
    return f"chambon:{match.group(1)}" if match else group


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            if path.stem in found:
                raise DatasetError(
                    f"duplicate id {path.stem!r} in {folder}: {found[path.stem].name} and {path.name}; "
                    "rename one so every id is unique")
            found[path.stem] = path
    return found


def _pair_by_stem(images_dir: Path, masks_dir: Path, data_root: Path, dataset: str,
                  orig_split: str = "") -> pd.DataFrame:
    images = _files_by_stem(images_dir, IMAGE_SUFFIXES)
    masks = _files_by_stem(masks_dir, MASK_SUFFIXES)
    rows = []
    for stem in sorted(set(images) | set(masks)):
        image, mask = images.get(stem), masks.get(stem)
        rows.append({
            "dataset": dataset, "id": stem,
            "image_path": image.relative_to(data_root).as_posix() if image else "",
            "mask_path": mask.relative_to(data_root).as_posix() if mask else "",
            "source_group": derive_source_group(stem), "orig_split": orig_split,
        })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def detect_layout(folder: Path) -> str:
    """``"meta"``, ``"folder"`` or ``"kaggle"`` for a dataset folder; raises :class:`DatasetError` otherwise."""
    folder = Path(folder)
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return "meta" if (folder / "meta.csv").is_file() else "folder"
    if any((folder / s / "images").is_dir() for s in ("train", "test", "val", "valid")):
        return "kaggle"
    raise DatasetError(
        f"{folder} is not a dataset folder: expected images/ and masks/ (optionally meta.csv), "
        "or train/images, train/masks, test/images, test/masks (Kaggle layout)")


def read_meta_dataset(folder: Path, data_root: Path) -> pd.DataFrame:
    """Pairs listed in ``folder/meta.csv`` (the shared and synthetic layout)."""
    meta = pd.read_csv(folder / "meta.csv", dtype={"id": str})
    missing = {"id", "image_file", "mask_file"} - set(meta.columns)
    if missing:
        raise DatasetError(f"{folder / 'meta.csv'} lacks column(s) {sorted(missing)}")
    rel = folder.relative_to(data_root)
    frame = pd.DataFrame({
        "dataset": folder.name,
        "id": meta["id"].astype(str),
        "image_path": [(rel / f).as_posix() for f in meta["image_file"]],
        "mask_path": [(rel / f).as_posix() for f in meta["mask_file"]],
        "source_group": (meta["source_image"].astype(str) if "source_image" in meta
                         else meta["id"].map(derive_source_group)),
        "orig_split": meta["orig_split"].astype(object).fillna("").astype(str) if "orig_split" in meta else "",
    })
    return frame[PAIR_COLUMNS]


def read_kaggle_dataset(folder: Path, data_root: Path) -> pd.DataFrame:
    """Pairs of the Kaggle crack segmentation layout (``train|test/images|masks``), by stem."""
    parts = []
    for split_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (split_dir / "images").is_dir() and (split_dir / "masks").is_dir():
            parts.append(_pair_by_stem(split_dir / "images", split_dir / "masks", data_root,
                                       folder.name, orig_split=split_dir.name))
    if not parts:
        raise DatasetError(f"{folder} has no <split>/images + <split>/masks folders")
    return pd.concat(parts, ignore_index=True)


def read_dataset(folder: str | Path, data_root: str | Path | None = None, layout: str = "auto") -> pd.DataFrame:
    """All pairs of one dataset folder, columns ``dataset, id, image_path, mask_path, source_group,
    orig_split``; an image without mask (or mask without image) is kept with an empty partner path so that
    validation can report it."""
    folder = Path(folder)
    data_root = Path(data_root) if data_root is not None else folder.parent
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist; check the data root and dataset names")
    layout = detect_layout(folder) if layout == "auto" else layout
    if layout == "meta":
        frame = read_meta_dataset(folder, data_root)
    elif layout == "kaggle":
        frame = read_kaggle_dataset(folder, data_root)
    else:
        frame = _pair_by_stem(folder / "images", folder / "masks", data_root, folder.name)
    if frame.empty:
        raise DatasetError(f"dataset folder {folder} contains no image/mask files")
    dup = frame["id"].duplicated(keep=False)
    if dup.any() and layout != "kaggle":
        raise DatasetError(f"duplicate ids in {folder}: {sorted(frame.loc[dup, 'id'].unique())[:5]}")
    if layout == "kaggle":  # ids only need to be unique within a split; qualify them
        frame["id"] = frame["orig_split"] + "/" + frame["id"]
    frame["source_group"] = frame["source_group"].map(canonical_source_group)
    return frame


def read_datasets(data_root: str | Path, datasets: list[str] | str = "all", layout: str = "auto") -> pd.DataFrame:
    """Pairs of several datasets under ``data_root`` (``"all"``: every sub-folder that is a dataset;
    if ``data_root`` itself is a dataset folder, just that one)."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DatasetError(f"data root {data_root} does not exist; set data.root in the study config")
    if datasets == "all":
        try:
            detect_layout(data_root)
            return read_dataset(data_root, data_root.parent, layout)
        except DatasetError:
            pass
        names = []
        for sub in sorted(p for p in data_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                detect_layout(sub)
                names.append(sub.name)
            except DatasetError:
                continue
        if not names:
            raise DatasetError(f"no dataset folders (images/ + masks/) found under {data_root}")
    else:
        names = list(datasets)
    frames = [read_dataset(data_root / name, data_root, layout) for name in names]
    return pd.concat(frames, ignore_index=True)
