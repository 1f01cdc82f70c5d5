"""Find image/mask pairs on disk and list them in one table (the start of the manifest).

``data.root`` may be any of:

* one **dataset folder**: ``images/`` + ``masks/`` (optionally ``meta.csv``), or the Kaggle layout
  ``train|test/images|masks``;
* a **folder of dataset folders**, each one of the above (``datasets: all`` reads every one).

Layouts, detected per dataset folder:

* ``meta``: ``<dataset>/images``, ``<dataset>/masks`` and ``<dataset>/meta.csv`` (columns ``id,
  image_file, mask_file`` and optionally ``source_image, orig_split``), as in ``../shared/data`` and the
  synthetic data;
* ``folder``: any ``images/`` + ``masks/`` pair. Sub-folders are read (``images/siteA/x.jpg`` pairs with
  ``masks/siteA/x.png``): image and mask pair by their path relative to ``images/`` and ``masks/``
  without the extension, never by position, compared in Unicode NFC (a folder copied from a Mac may
  spell "Brücke.jpg" composed and "Brücke.png" decomposed; they pair). A mask named ``<image>_mask``, ``_label``, ``_gt`` ... pairs
  with ``<image>`` when no mask has the image's own name. Extensions are case-insensitive; hidden and
  system files (``.DS_Store``, ``._x.jpg``, ``Thumbs.db``, ``desktop.ini``) are not data; any other file
  that is not an image is listed in the scan's notes;
* ``kaggle``: the Kaggle crack segmentation dataset, ``train|test/images|masks``, each split read like
  ``folder``.

Folder names ``images``/``masks`` are matched case-insensitively (``Images/`` works). Paths in the
returned table are relative to the data root (never absolute), so a manifest stays valid when the data
moves. ``source_group`` names the photo a pair was cut from (``source_image`` where a ``meta.csv`` gives it,
else derived from the file name by :func:`derive_source_group`); the split keeps every group in one split.

:func:`scan_datasets` returns the pairs and *notes*: every folder under the root that was not read and
why, and every file that was ignored, so that nothing is skipped in silence.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp", ".gif")
SYSTEM_FILES = ("thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r")
LAYOUTS = ("auto", "meta", "folder", "kaggle")
PAIR_COLUMNS = ["dataset", "id", "image_path", "mask_path", "source_group", "orig_split"]
# kept from a meta.csv when present: the synthetic data's distractor kinds (Figure 2 prefers such pairs)
OPTIONAL_PAIR_COLUMNS = ["distractors"]
NOTE_COLUMNS = ["dataset", "path", "kind", "note"]
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
MASK_NAME_SUFFIX = re.compile(r"[_\-. ](mask|masks|label|labels|gt|groundtruth|ground_truth|seg|annotation)$",
                              re.IGNORECASE)

# Photos of S. Chambon's crack database (AigleRN, ESAR, LCMS, LRIS, TEMPEST2) appear in two shared datasets
# under two spellings: "LCMS_31c" (aiglern_trimm_lmm) and "Im_GT_LCMS_31cor" (alexdonchuk_coarse). One
# canonical name keeps both copies of a photo in one split (see ../shared/data/SOURCES.md).
_CHAMBON = re.compile(r"^(?:Im_(?:no)?GT_)?((?:AIGLE_RN|ESAR|LCMS|LRIS|TEMPEST2?)_\w+?)(?:or)?$")


class DatasetError(ValueError):
    """A dataset folder that cannot be read; the message names the folder or file."""


class EmptyDatasetError(DatasetError):
    """A dataset folder whose images/ and masks/ hold no image file."""


@dataclass
class Scan:
    """What :func:`scan_datasets` found: ``pairs`` (columns :data:`PAIR_COLUMNS`) and ``notes`` (columns
    :data:`NOTE_COLUMNS`: the dataset, a path relative to the data root, ``kind`` = ``"skipped folder"``,
    ``"ignored file"`` or ``"not read"``, and a sentence saying why)."""

    pairs: pd.DataFrame
    notes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NOTE_COLUMNS))


def derive_source_group(stem: str) -> str:
    """Best guess of the source photo from a patch's file stem.

    Strips a trailing patch index, e.g. ``CRACK500_20160222_080850_1_361`` -> ``CRACK500_20160222_080850``,
    ``11111-10`` -> ``11111``; stems without such a suffix are their own group. A pair id with sub-folders
    (``siteA/x-3``) keeps its folders (``siteA/x``): photos of two sites never share a group by name alone.
    """
    folder, _, name = stem.rpartition("/")
    group = re.sub(r"(_\d+_\d+|-\d+)$", "", name) or name
    return f"{folder}/{group}" if folder else group


def canonical_source_group(group: str) -> str:
    """One name for a photo known under several spellings (Chambon database: ``Im_GT_LCMS_31cor`` and
    ``LCMS_31c`` -> ``chambon:LCMS_31c``); other groups are returned unchanged."""
    match = _CHAMBON.match(group)
    return f"chambon:{match.group(1)}" if match else group


def _child_dir(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively (``Images/`` for ``images``), or None."""
    exact = folder / name
    if exact.is_dir():
        return exact
    try:
        matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name]
    except OSError:
        return None
    return sorted(matches)[0] if matches else None


def _is_hidden_or_system(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts) or rel.name.lower() in SYSTEM_FILES


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C (composed: "ü" as one code point), the form names are compared in."""
    return unicodedata.normalize("NFC", text)


def is_broken_link(path: Path) -> bool:
    """Whether ``path`` is a symbolic link whose target does not exist."""
    return path.is_symlink() and not path.exists()


def _files_by_key(folder: Path, suffixes: tuple[str, ...], data_root: Path, dataset: str,
                  notes: list[dict]) -> dict[str, Path]:
    """Files under ``folder`` (any depth) by key = path relative to ``folder`` without extension (posix,
    Unicode NFC, so that composed and decomposed spellings of one name are one key).

    Hidden and system files are skipped; other files with a suffix not in ``suffixes`` are added to
    ``notes``. A symbolic link pointing nowhere is kept (validation reports it as a broken link, naming its
    target). Two files with one key (``x.jpg`` and ``x.png``) raise :class:`DatasetError`."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if _is_hidden_or_system(rel) or not (path.is_file() or is_broken_link(path)):
            continue
        if path.suffix.lower() not in suffixes:
            notes.append({"dataset": dataset, "path": path.relative_to(data_root).as_posix(),
                          "kind": "ignored file", "note": f"not an image file ({path.suffix or 'no extension'})"})
            continue
        key = nfc(rel.with_suffix("").as_posix())
        if key in found:
            raise DatasetError(
                f"duplicate id {key!r} in {folder}: {found[key].relative_to(folder)} and {rel}; "
                "rename one so every id is unique")
        found[key] = path
    return found


def _match_masks(images: dict[str, Path], masks: dict[str, Path]) -> dict[str, Path]:
    """Masks re-keyed to their image: a mask named ``<key>_mask`` (``_label``, ``_gt`` ...) belongs to
    image ``<key>`` when no mask is named ``<key>`` itself."""
    out = dict(masks)
    for key in masks:
        if key in images:
            continue
        base = MASK_NAME_SUFFIX.sub("", key)
        if base != key and base in images and base not in out:
            out[base] = out.pop(key)
    return out


def _pair_by_key(images_dir: Path, masks_dir: Path, data_root: Path, dataset: str, notes: list[dict],
                 orig_split: str = "") -> pd.DataFrame:
    images = _files_by_key(images_dir, IMAGE_SUFFIXES, data_root, dataset, notes)
    masks = _match_masks(images, _files_by_key(masks_dir, MASK_SUFFIXES, data_root, dataset, notes))
    rows = []
    for key in sorted(set(images) | set(masks)):
        image, mask = images.get(key), masks.get(key)
        rows.append({
            "dataset": dataset, "id": key,
            "image_path": image.relative_to(data_root).as_posix() if image else "",
            "mask_path": mask.relative_to(data_root).as_posix() if mask else "",
            "source_group": derive_source_group(key), "orig_split": orig_split,
        })
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _kaggle_splits(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(split, images_dir, masks_dir)`` of every ``<split>/images`` + ``<split>/masks`` in ``folder``."""
    out = []
    for name in SPLIT_NAMES:
        split = _child_dir(folder, name)
        if split is not None:
            images, masks = _child_dir(split, "images"), _child_dir(split, "masks")
            if images is not None and masks is not None:
                out.append((split.name, images, masks))
    return out


def detect_layout(folder: Path) -> str:
    """``"meta"``, ``"folder"`` or ``"kaggle"`` for a dataset folder; raises :class:`DatasetError` saying
    what the folder holds otherwise. The Kaggle layout wins when ``train/images`` + ``train/masks`` exist
    (the Kaggle download also holds a top-level ``images/`` + ``masks/`` copy of the same pairs)."""
    folder = Path(folder)
    if _kaggle_splits(folder):
        return "kaggle"
    images, masks = _child_dir(folder, "images"), _child_dir(folder, "masks")
    if images is not None and masks is not None:
        return "meta" if (folder / "meta.csv").is_file() else "folder"
    raise DatasetError(f"{folder} is not a dataset folder: {why_not_a_dataset(folder)}")


def why_not_a_dataset(folder: Path) -> str:
    """One sentence on what ``folder`` holds and what a dataset folder needs."""
    folder = Path(folder)
    try:
        children = sorted(p for p in folder.iterdir() if not _is_hidden_or_system(Path(p.name)))
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    dirs = [p.name + "/" for p in children if p.is_dir()]
    n_images = sum(1 for p in children if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    need = "expected images/ and masks/ (optionally meta.csv), or train/images + train/masks (Kaggle layout)"
    has = ", ".join(dirs[:6]) + (" ..." if len(dirs) > 6 else "")
    if folder.name.lower() in ("images", "masks") and is_dataset_folder(folder.parent):
        return f"it is the {folder.name}/ folder of the dataset {folder.parent}; point data.root at {folder.parent}"
    if _child_dir(folder, "images") is not None:
        return f"it has images/ but no masks/ folder (its folders: {has}); put the masks in masks/, " \
               "each named like its image"
    if _child_dir(folder, "masks") is not None:
        return f"it has masks/ but no images/ folder (its folders: {has}); put the photos in images/"
    if n_images:
        return f"it holds {n_images} image file(s) directly; {need}"
    if not children:
        return f"it is empty; {need}"
    return f"{need}; it holds {has or 'only files that are not images'}"


def read_meta_dataset(folder: Path, data_root: Path, notes: list[dict] | None = None) -> pd.DataFrame:
    """Pairs listed in ``folder/meta.csv`` (the shared and synthetic layout); files in ``images/`` or
    ``masks/`` that it does not list go to ``notes``."""
    meta = pd.read_csv(folder / "meta.csv", dtype={"id": str})
    missing = {"id", "image_file", "mask_file"} - set(meta.columns)
    if missing:
        raise DatasetError(f"{folder / 'meta.csv'} lacks column(s) {sorted(missing)}")
    rel = folder.relative_to(data_root)
    on_disk = {nfc(path.relative_to(folder).as_posix()): path.relative_to(folder).as_posix()
               for sub in ("images", "masks") for path in sorted((folder / sub).rglob("*"))
               if path.is_file() or is_broken_link(path)}

    def as_on_disk(listed: str) -> str:  # meta.csv and the file system may spell a name in two normal forms
        name = Path(listed).as_posix()
        return name if (folder / name).exists() else on_disk.get(nfc(name), name)

    image_files = [as_on_disk(f) for f in meta["image_file"]]
    mask_files = [as_on_disk(f) for f in meta["mask_file"]]
    if notes is not None:
        listed = set(image_files) | set(mask_files)
        for name in sorted(set(on_disk.values()) - listed):
            if not _is_hidden_or_system(Path(name)):
                notes.append({"dataset": folder.name, "path": (rel / name).as_posix(), "kind": "not read",
                              "note": "not listed in meta.csv"})
    frame = pd.DataFrame({
        "dataset": folder.name,
        "id": meta["id"].astype(str).map(nfc),
        "image_path": [(rel / f).as_posix() for f in image_files],
        "mask_path": [(rel / f).as_posix() for f in mask_files],
        "source_group": (meta["source_image"].astype(str) if "source_image" in meta
                         else meta["id"].map(derive_source_group)),
        "orig_split": meta["orig_split"].astype(object).fillna("").astype(str) if "orig_split" in meta else "",
    })
    optional = [c for c in OPTIONAL_PAIR_COLUMNS if c in meta]
    for column in optional:
        frame[column] = meta[column].astype(object).fillna("").astype(str)
    return frame[PAIR_COLUMNS + optional]


def read_kaggle_dataset(folder: Path, data_root: Path, notes: list[dict] | None = None) -> pd.DataFrame:
    """Pairs of the Kaggle crack segmentation layout (``train|test/images|masks``), by path and name."""
    notes = [] if notes is None else notes
    splits = _kaggle_splits(folder)
    parts = [_pair_by_key(images, masks, data_root, folder.name, notes, orig_split=split)
             for split, images, masks in splits]
    if not parts:
        raise DatasetError(f"{folder} has no <split>/images + <split>/masks folders")
    read = ", ".join(f"{s}/" for s, _, _ in splits)
    for name in ("images", "masks"):
        top = _child_dir(folder, name)
        if top is not None:
            notes.append({"dataset": folder.name, "path": top.relative_to(data_root).as_posix() + "/",
                          "kind": "not read", "note": f"the Kaggle split folders ({read}) were read instead of "
                                                      f"this top-level {name}/ folder (the Kaggle download's copy)"})
    _note_unread(folder, data_root, folder.name, tuple(s.lower() for s, _, _ in splits) + ("images", "masks"), notes)
    for split, images, masks in splits:
        _note_unread(folder / split, data_root, folder.name, (images.name.lower(), masks.name.lower()), notes)
    return pd.concat(parts, ignore_index=True)


def _note_unread(folder: Path, data_root: Path, dataset: str, read: tuple[str, ...], notes: list[dict]) -> None:
    """Add a note for each sub-folder and loose image file of ``folder`` whose lower-case name is not in
    ``read``."""
    for child in sorted(folder.iterdir()):
        if _is_hidden_or_system(Path(child.name)) or child.name.lower() in read:
            continue
        if child.is_dir():
            note = "a folder next to images/ and masks/; only images/ and masks/ are read"
        elif child.suffix.lower() in IMAGE_SUFFIXES:
            note = "an image next to images/ and masks/, not inside them"
        else:
            continue
        notes.append({"dataset": dataset, "path": child.relative_to(data_root).as_posix() + ("/" if child.is_dir() else ""),
                      "kind": "not read", "note": note})


def read_dataset(folder: str | Path, data_root: str | Path | None = None, layout: str = "auto",
                 notes: list[dict] | None = None) -> pd.DataFrame:
    """All pairs of one dataset folder, columns ``dataset, id, image_path, mask_path, source_group,
    orig_split`` (paths relative to ``data_root``, default: the folder's parent); an image without mask
    (or mask without image) is kept with an empty partner path so that validation can report it.
    ``notes``: a list that receives the ignored files (see :class:`Scan`)."""
    folder = Path(os.path.abspath(folder))
    data_root = Path(os.path.abspath(data_root)) if data_root is not None else folder.parent
    notes = [] if notes is None else notes
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist; check the data root and dataset names")
    layout = detect_layout(folder) if layout == "auto" else layout
    if layout == "meta":
        frame = read_meta_dataset(folder, data_root, notes)
        _note_unread(folder, data_root, folder.name, ("images", "masks"), notes)
    elif layout == "kaggle":
        frame = read_kaggle_dataset(folder, data_root, notes)
    else:
        images, masks = _child_dir(folder, "images"), _child_dir(folder, "masks")
        if images is None or masks is None:
            raise DatasetError(f"{folder} is not a dataset folder: {why_not_a_dataset(folder)}")
        frame = _pair_by_key(images, masks, data_root, folder.name, notes)
        _note_unread(folder, data_root, folder.name, (images.name.lower(), masks.name.lower()), notes)
    if frame.empty:
        raise EmptyDatasetError(f"dataset folder {folder} contains no image/mask files (looked in images/ and masks/, "
                           f"sub-folders included, for {', '.join(IMAGE_SUFFIXES)})")
    dup = frame["id"].duplicated(keep=False)
    if dup.any() and layout != "kaggle":
        raise DatasetError(f"duplicate ids in {folder}: {sorted(frame.loc[dup, 'id'].unique())[:5]}")
    if layout == "kaggle":  # ids only need to be unique within a split; qualify them
        frame["id"] = frame["orig_split"] + "/" + frame["id"]
    frame["source_group"] = frame["source_group"].map(canonical_source_group)
    return frame


def is_dataset_folder(folder: Path) -> bool:
    """Whether :func:`detect_layout` recognises ``folder``."""
    try:
        detect_layout(folder)
        return True
    except DatasetError:
        return False


def scan_datasets(data_root: str | Path, datasets: list[str] | str = "all", layout: str = "auto") -> Scan:
    """Pairs of the dataset(s) at ``data_root`` and notes on everything not read.

    ``data_root`` is a dataset folder (read as one dataset named after the folder) or a folder of dataset
    folders. ``datasets="all"`` reads every sub-folder that is a dataset and notes why each other
    sub-folder was skipped; a sub-folder holding synthetic data made by this project (``synthetic.json``)
    is skipped so it never mixes into real data (name it in ``datasets`` to read it). A list of names
    reads exactly those and raises :class:`DatasetError` naming any that cannot be read. Paths are
    relative to ``data_root``.
    """
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DatasetError(f"data root {data_root} does not exist; set data.root in the study config")
    notes: list[dict] = []
    if isinstance(datasets, str) and datasets != "all":
        datasets = [datasets]
    if datasets == "all":
        if is_dataset_folder(data_root):
            frame = read_dataset(data_root, data_root, layout, notes)
            return Scan(frame, pd.DataFrame(notes, columns=NOTE_COLUMNS))
        names = []
        for sub in sorted(p for p in data_root.iterdir() if p.is_dir() and not _is_hidden_or_system(Path(p.name))):
            if (sub / "synthetic.json").is_file():
                reason = ("synthetic data made by this project (it holds synthetic.json); not mixed into real data. "
                          "Name it in data.datasets to read it anyway")
            elif not is_dataset_folder(sub):
                reason = f"not a dataset folder: {why_not_a_dataset(sub)}"
            else:
                names.append(sub.name)
                continue
            notes.append({"dataset": sub.name, "path": sub.name + "/", "kind": "skipped folder", "note": reason})
        for loose in sorted(p for p in data_root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not _is_hidden_or_system(Path(p.name))):
            notes.append({"dataset": "(data root)", "path": loose.name, "kind": "not read",
                          "note": "an image directly in the data root, not in a dataset's images/ folder"})
        if not names:
            skipped = "".join(f"\n  {n['path']}: {n['note']}" for n in notes if n["kind"] == "skipped folder")
            raise DatasetError(f"no dataset folders found under {data_root}: {why_not_a_dataset(data_root)}"
                               + (f". Sub-folders skipped:{skipped}" if skipped else ""))
        frames = []
        for name in names:
            try:
                frames.append(read_dataset(data_root / name, data_root, layout, notes))
            except EmptyDatasetError:
                notes.append({"dataset": name, "path": name + "/", "kind": "skipped folder",
                              "note": "images/ and masks/ hold no image files"})
        if not frames:
            raise DatasetError(f"no image/mask files in any dataset folder under {data_root}")
    else:
        names = list(datasets)
        if not names:
            raise DatasetError("the list of datasets is empty; name dataset folders or use 'all'")
        frames = [read_dataset(data_root / name, data_root, layout, notes) for name in names]
    return Scan(pd.concat(frames, ignore_index=True), pd.DataFrame(notes, columns=NOTE_COLUMNS))


def read_datasets(data_root: str | Path, datasets: list[str] | str = "all", layout: str = "auto") -> pd.DataFrame:
    """The pairs of :func:`scan_datasets` (paths relative to ``data_root``)."""
    return scan_datasets(data_root, datasets, layout).pairs
