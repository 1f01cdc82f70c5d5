"""The data stage's summary: what was found, used and excluded per dataset, and what was not read.

Notebook 01 prints it and writes it to ``data_summary.txt`` (with the notes of
:func:`crack_utils.datasets.scan_datasets` in ``data_notes.csv``); the pipeline prints the file on the
console when the data stage ends, so a researcher sees every excluded pair's reason and every folder that
held nothing usable without opening the notebook.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from crack_utils.datasets import NOTE_COLUMNS
from crack_utils.manifest import reason_kind
from crack_utils.splitting import SPLITS

SUMMARY_FILE = "data_summary.txt"
NOTES_FILE = "data_notes.csv"
HELD_OUT_PHOTO = "photo of the held-out test dataset"
NOT_DRAWN = "not drawn (max_pairs_per_dataset)"


def reason_counts(rows: pd.DataFrame) -> dict[str, int]:
    """Pairs per exclusion rule (a pair can count under several), most frequent first; pairs left out of
    training because their photo is in a held-out test dataset count as :data:`HELD_OUT_PHOTO`."""
    counts: dict[str, int] = {}
    for reason in rows["exclusion_reason"]:
        for part in filter(None, str(reason).split("; ")):
            kind = reason_kind(part)
            counts[kind] = counts.get(kind, 0) + 1
    held = int(((rows["split"] == "excluded") & ~rows["excluded"].astype(bool)).sum())
    if held:
        counts[HELD_OUT_PHOTO] = held
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def dataset_table(manifest: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per dataset: ``found`` (pairs on disk, from ``pairs`` when given, else the manifest),
    ``considered`` (in the manifest, after ``max_pairs_per_dataset``), ``used`` (in train/val/test),
    ``excluded`` (found but not used) and the split sizes."""
    found = (pairs if pairs is not None else manifest).groupby("dataset").size()
    rows = []
    for dataset in sorted(set(found.index) | set(manifest["dataset"])):
        group = manifest[manifest["dataset"] == dataset]
        used = group["split"].isin(SPLITS)
        n_found = int(found.get(dataset, 0))
        rows.append({"dataset": dataset, "found": n_found, "considered": len(group),
                     "used": int(used.sum()), "excluded": n_found - int(used.sum()),
                     **{split: int((group["split"] == split).sum()) for split in SPLITS}})
    return pd.DataFrame(rows).set_index("dataset")


def _hints(group: pd.DataFrame) -> list[str]:
    """Likely causes behind a dataset's exclusions, in words a person can act on."""
    hints = []
    reasons = group["exclusion_reason"].astype(str)
    no_mask = reasons.str.contains("has no mask")
    no_image = reasons.str.contains("has no image")
    if no_mask.all():
        hints.append("no mask file was found at all: masks/ is empty or holds no image files")
    elif no_image.all():
        hints.append("no image file was found at all: images/ is empty or holds no image files")
    elif (no_mask | no_image).all():
        example_image = group.loc[no_mask, "image_path"].iloc[0]
        example_mask = group.loc[no_image, "mask_path"].iloc[0]
        hints.append(f"no image and mask share a name (e.g. {example_image} and {example_mask}); a mask must "
                     "have its image's name and sub-folder under masks/ (any extension)")
    checked = group[group["prepared"].astype(bool)] if "prepared" in group else group.iloc[:0]
    if len(checked) and (checked["crack_fraction"] > 0.5).mean() >= 0.5:
        hints.append("most masks mark over half the image as crack: are they inverted? cracks must be "
                     "white (non-zero) on black")
    if reasons.str.contains("colour image").any():
        hints.append("colour masks are not read: save masks as grey images, crack white (non-zero) on black")
    if reasons.str.contains("size mismatch").all():
        hints.append("every mask has another size than its image: masks must have the image's pixel size")
    return hints


def format_summary(manifest: pd.DataFrame, notes: pd.DataFrame | None = None, pairs: pd.DataFrame | None = None,
                   data_label: str = "") -> str:
    """The console summary (several lines): per dataset pairs found, used and excluded by reason; every
    folder that held nothing usable and why; files and folders that were not read.

    ``manifest``: from :func:`crack_utils.manifest.build_manifest`; ``notes``, ``pairs``: from
    :func:`crack_utils.datasets.scan_datasets` (``pairs`` before any subsample); ``data_label``: where the
    data came from, as the user wrote it.
    """
    notes = notes if notes is not None else pd.DataFrame(columns=NOTE_COLUMNS)
    table = dataset_table(manifest, pairs)
    totals = table.sum()
    lines = [f"Data summary{': ' + data_label if data_label else ''}",
             f"  {len(table)} dataset(s): {totals['found']} pairs found, {totals['used']} used (train "
             f"{totals['train']}, val {totals['val']}, test {totals['test']}), {totals['excluded']} excluded"]
    empty = []
    for dataset, row in table.iterrows():
        group = manifest[manifest["dataset"] == dataset]
        counts = reason_counts(group)
        if row["found"] > row["considered"]:
            counts[NOT_DRAWN] = int(row["found"] - row["considered"])
        why = ", ".join(f"{k}: {v}" for k, v in counts.items())
        lines.append(f"  {dataset}: {row['found']} found, {row['used']} used, {row['excluded']} excluded"
                     + (f" ({why})" if why else ""))
        extras = []
        nonbinary = int((group["mask_nonbinary_pixels"].fillna(0) > 0).sum()) if "mask_nonbinary_pixels" in group else 0
        if nonbinary:
            extras.append(f"{nonbinary} mask(s) with in-between grey levels (JPEG-saved masks?) were thresholded")
        hints = _hints(group) if len(group) else []
        if row["used"] == 0:
            empty.append(f"  {dataset}/: {row['found']} pair(s) found, none usable ({why or 'no pairs'})"
                         + "".join(f"; {h}" for h in hints))
        else:
            extras += hints
        lines += [f"      note: {e}" for e in extras]
    skipped = notes[notes["kind"] == "skipped folder"]
    empty += [f"  {row.path}: {row.note}" for row in skipped.itertuples()]
    if empty:
        lines.append("Folders with nothing usable:")
        lines += empty
    unread = notes[notes["kind"] != "skipped folder"]
    if len(unread):
        lines.append("Not read:")
        for (dataset, note), group in unread.groupby(["dataset", "note"], sort=True):
            paths = group["path"].tolist()
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            lines.append(f"  {dataset}: {len(paths)} × {note}: {shown}")
    return "\n".join(lines)


def check_splits(manifest: pd.DataFrame) -> None:
    """Raise ValueError naming the empty split(s) if train, val or test holds no pair (later notebooks
    need all three)."""
    counts = manifest["split"].value_counts()
    empty = [s for s in SPLITS if counts.get(s, 0) == 0]
    if empty:
        raise ValueError(
            f"no usable pair for the {' and '.join(empty)} split(s) ({int(counts.drop('excluded', errors='ignore').sum())} "
            f"pairs used of {len(manifest)}); see the data summary above for what was excluded and why, or "
            "add data / change data.fractions")


def write_summary(out_dir: str | Path, text: str, notes: pd.DataFrame | None = None) -> None:
    """Write :data:`SUMMARY_FILE` and :data:`NOTES_FILE` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")
    (notes if notes is not None else pd.DataFrame(columns=NOTE_COLUMNS)).to_csv(out_dir / NOTES_FILE, index=False)


def read_summary(run_dir: str | Path) -> str | None:
    """The summary text a data run wrote, or None if it wrote none."""
    path = Path(run_dir) / SUMMARY_FILE
    return path.read_text(encoding="utf-8").rstrip("\n") if path.is_file() else None
