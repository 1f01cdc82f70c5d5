"""The manifest: one row per image/mask pair with validation, screening, exclusion and split.

Columns: ``key`` (``dataset/id``, unique), ``dataset, id, image_path, mask_path`` (relative to the data
root), ``width, height, crack_fraction, mask_nonbinary_pixels, source_group, orig_split``, the screening
statistics at study size (``darker_by, mean_width, components``), ``excluded, exclusion_reason`` and
``split``. Every later notebook reads the split from here; nothing re-splits at train time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crack_utils.datasets import OPTIONAL_PAIR_COLUMNS, read_datasets
from crack_utils.paper import IMAGE_SIZE, SPLIT_FRACTIONS
from crack_utils.preprocess import prepare_arrays
from crack_utils.screening import manual_exclusion_reasons, read_exclusions, screen_labels
from crack_utils.splitting import grouped_split
from crack_utils.study.layout import PREPARED_ARRAYS
from crack_utils.validation import BadPairError, validate_pairs

MANIFEST_COLUMNS = [
    "key", "dataset", "id", "image_path", "mask_path", "width", "height", "crack_fraction",
    "mask_nonbinary_pixels", "source_group", "orig_split", "darker_by", "mean_width", "components",
    "excluded", "exclusion_reason", "split",
]


def build_manifest(data_root: str | Path, datasets: list[str] | str = "all", size: int = IMAGE_SIZE,
                   exclusions_file: str | Path | None = None, screening: dict | None = None,
                   fractions=SPLIT_FRACTIONS, seed: int = 0, test_dataset: str | None = None,
                   max_pairs_per_dataset: int | None = None, progress: bool = True,
                   pairs: pd.DataFrame | None = None):
    """Read, validate, prepare, screen, exclude and split; returns ``(manifest, images, masks)``.

    ``images`` uint8 (M, size, size, 3) and ``masks`` uint8 (M, size, size) hold the M pairs that passed
    validation, in the order of ``manifest[manifest.prepared]``. ``screening``: keyword overrides for
    :func:`crack_utils.screening.screen_labels`. ``max_pairs_per_dataset``: a seeded subsample per
    dataset, whole source groups at a time (for quick protocols); ``None`` keeps all. ``pairs``: the pairs
    of :func:`crack_utils.datasets.scan_datasets` when already read (else read here).

    A dataset named in ``datasets`` (a list) or as ``test_dataset`` must keep at least one valid pair, else
    :class:`crack_utils.validation.BadPairError` names it; with ``datasets="all"`` a dataset with nothing
    usable stays in the manifest, every pair excluded with its reason, for the data summary to report.
    """
    data_root = Path(data_root)
    if pairs is None:
        pairs = read_datasets(data_root, datasets)
    if max_pairs_per_dataset is not None:
        pairs = subsample_by_group(pairs, max_pairs_per_dataset, seed)
    checked = validate_pairs(pairs, data_root, progress=progress)
    required = ([] if datasets == "all" else [datasets] if isinstance(datasets, str) else list(datasets))
    for name in required + ([test_dataset] if test_dataset is not None else []):
        group = checked[checked["dataset"] == name]
        if len(group) and (group["problem"] != "").all():
            raise BadPairError(f"dataset {name!r} has no valid image/mask pair; "
                               f"first problem: {group['problem'].iloc[0]}")
    checked.insert(0, "key", checked["dataset"] + "/" + checked["id"])
    if checked["key"].duplicated().any():
        dups = checked.loc[checked["key"].duplicated(), "key"].tolist()[:5]
        raise ValueError(f"duplicate dataset/id keys: {dups}")
    valid = checked["problem"] == ""
    images, masks, stats = prepare_arrays(checked[valid], data_root, size=size, progress=progress)
    manifest = checked.copy()
    for col in ("darker_by", "mean_width", "components"):
        manifest[col] = np.nan
        manifest.loc[valid, col] = stats[col]
    screen = pd.Series("", index=manifest.index, dtype=object)
    screen[valid] = screen_labels(stats, **(screening or {}))
    manual = manual_exclusion_reasons(manifest, read_exclusions(exclusions_file) if exclusions_file else
                                      pd.DataFrame(columns=["id", "reason"]))
    reasons = [
        "; ".join(r for r in parts if r)
        for parts in zip(manifest["problem"].fillna(""), screen, manual)
    ]
    manifest["exclusion_reason"] = reasons
    manifest["excluded"] = manifest["exclusion_reason"] != ""
    manifest["split"] = grouped_split(manifest, fractions=fractions, seed=seed, test_dataset=test_dataset)
    manifest["prepared"] = valid
    optional = [c for c in OPTIONAL_PAIR_COLUMNS if c in manifest]  # e.g. the synthetic distractors
    return manifest[MANIFEST_COLUMNS + optional + ["prepared"]], images, masks


def subsample_by_group(pairs: pd.DataFrame, max_pairs: int, seed: int) -> pd.DataFrame:
    """At most about ``max_pairs`` pairs per dataset, drawing whole source groups in a seeded order."""
    keep = []
    rng = np.random.default_rng(seed)
    for _, rows in pairs.groupby("dataset", sort=True):
        groups = rng.permutation(np.sort(rows["source_group"].unique()))
        sizes = rows.groupby("source_group").size().loc[groups]
        chosen = groups[(sizes.cumsum() <= max_pairs).to_numpy() | (np.arange(len(groups)) == 0)]
        keep.append(rows[rows["source_group"].isin(chosen)])
    return pd.concat(keep).sort_index()


_PROBLEM_KINDS = (("truncated", "truncated image"), ("unreadable", "unreadable file"),
                  ("file missing", "missing file"), ("has no mask", "image without mask"),
                  ("has no image", "mask without image"), ("size mismatch", "size mismatch"),
                  ("colour image", "colour mask"), ("duplicate of", "duplicate image"), ("manual:", "manual exclusion"))


def reason_kind(reason: str) -> str:
    """Short rule name for one exclusion reason (screening reasons are already short)."""
    for needle, kind in _PROBLEM_KINDS:
        if needle in reason:
            return kind
    return reason


def exclusion_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Pairs removed per dataset and rule (a pair can count under several rules)."""
    rows = []
    for dataset, group in manifest.groupby("dataset"):
        counts: dict[str, int] = {}
        for reason in group["exclusion_reason"]:
            for part in filter(None, reason.split("; ")):
                kind = reason_kind(part)
                counts[kind] = counts.get(kind, 0) + 1
        rows.append({"dataset": dataset, "pairs": len(group), "excluded": int(group["excluded"].sum()), **counts})
    return pd.DataFrame(rows).fillna(0).set_index("dataset").astype(int)


def save_manifest(manifest: pd.DataFrame, images, masks, out_dir: str | Path) -> None:
    """Write ``manifest.csv`` and ``prepared.npz`` (rows where ``prepared``) into ``out_dir``."""
    from crack_utils.preprocess import save_cache

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    save_cache(out_dir / PREPARED_ARRAYS, images, masks, manifest.loc[manifest["prepared"], "key"])


def load_manifest(data_dir: str | Path) -> pd.DataFrame:
    """Read ``manifest.csv`` written by the data notebook (01), or its committed ``manifest.csv.xz``
    (:mod:`crack_utils.study.committed`)."""
    from crack_utils.study.committed import table_path

    path = Path(data_dir) / "manifest.csv"
    if not table_path(path).is_file():
        raise FileNotFoundError(f"{path} not found; run the data notebook (01) for this study first")
    return pd.read_csv(table_path(path), dtype={"id": str, "key": str, "source_group": str}, keep_default_na=False,
                       na_values={"darker_by": [""], "mean_width": [""], "width": [""], "height": [""],
                                  "crack_fraction": [""]})


def load_split(data_dir: str | Path, split: str):
    """``(rows, images, masks)`` of one split (``"train"``, ``"val"`` or ``"test"``) from the data notebook's
    outputs, in manifest order. Raises ValueError if the split is empty."""
    from crack_utils.preprocess import load_cache

    manifest = load_manifest(data_dir)
    rows = manifest[(manifest["split"] == split)].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split {split!r} in {data_dir}/manifest.csv is empty; use more images or other fractions")
    images, masks, _ = load_cache(Path(data_dir) / PREPARED_ARRAYS, rows["key"].tolist())
    return rows, images, masks


def fingerprint(data_dir: str | Path) -> str:
    """MD5 of ``manifest.csv`` and ``prepared.npz``'s size: changes whenever the data notebook's output does."""
    import hashlib

    from crack_utils.study.committed import table_bytes

    data_dir = Path(data_dir)
    digest = hashlib.md5(table_bytes(data_dir / "manifest.csv"))
    digest.update(str((data_dir / PREPARED_ARRAYS).stat().st_size).encode())
    return digest.hexdigest()


def prepared_index(manifest: pd.DataFrame, keys) -> list[int]:
    """Positions of ``keys`` in the prepared arrays returned with ``manifest`` by :func:`build_manifest`."""
    position = {k: i for i, k in enumerate(manifest.loc[manifest["prepared"], "key"])}
    return [position[k] for k in keys]
