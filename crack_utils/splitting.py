"""Train/validation/test split grouped by source photo and stratified by dataset.

Every ``source_group`` (the photo patches were cut from) lands in exactly one split, so no photo is seen
in training and tested on. Within each dataset the groups are shuffled with ``seed`` and assigned in
order until each split holds its fraction of that dataset's pairs. Optionally one dataset is held out
entirely as the test set (generalization runs). Excluded pairs get split ``"excluded"``.

Leave-one-dataset-out and shared photos: two of the six shared datasets label the same Chambon photos
(see :mod:`crack_utils.datasets`). When a dataset is held out, *every* pair of it is a test pair, and a
pair of another dataset cut from one of the held-out dataset's photos is left out (split ``"excluded"``),
so no held-out photo is trained on under another dataset's labels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def grouped_split(manifest: pd.DataFrame, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0, test_dataset: str | None = None) -> pd.Series:
    """Split label per row (``"train"``, ``"val"``, ``"test"`` or ``"excluded"``), index as ``manifest``.

    ``manifest`` needs columns ``dataset``, ``source_group`` and ``excluded`` (bool). ``fractions``:
    train/val/test shares of each dataset's pairs (sum 1). ``test_dataset``: that dataset becomes the
    whole test set and the others are split train/val in the ratio of the first two fractions.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    for col in ("dataset", "source_group", "excluded"):
        if col not in manifest:
            raise ValueError(f"manifest lacks column {col!r}")
    if test_dataset is not None and test_dataset not in set(manifest["dataset"]):
        raise ValueError(f"test_dataset {test_dataset!r} not in the manifest; datasets: "
                         f"{', '.join(sorted(manifest['dataset'].unique()))}")
    split = pd.Series("excluded", index=manifest.index, dtype=object)
    usable = manifest[~manifest["excluded"].astype(bool)]
    if test_dataset is not None:
        held_out = usable["dataset"] == test_dataset
        split[usable.index[held_out]] = "test"
        # photos of the held-out dataset never reach training through another dataset's copy
        usable = usable[~held_out & ~usable["source_group"].isin(set(usable.loc[held_out, "source_group"]))]
    # A group shared by several datasets (a family) is assigned once, with the dataset that has most of it.
    owner = usable.groupby("source_group")["dataset"].agg(lambda s: s.value_counts().index[0])
    rng = np.random.default_rng(seed)
    for dataset in sorted(usable["dataset"].unique()):
        groups = owner[owner == dataset].index.to_numpy()
        rows = usable[usable["source_group"].isin(groups)]
        shares = np.array(fractions, float)
        if test_dataset is not None:
            shares = np.array([fractions[0], fractions[1], 0.0])
            shares /= shares.sum()
        sizes = rows.groupby("source_group").size()
        order = rng.permutation(np.sort(sizes.index.to_numpy()))
        cumulative = sizes.loc[order].cumsum().to_numpy() / sizes.sum()
        # a group goes to the split in which its midpoint falls
        mid = cumulative - sizes.loc[order].to_numpy() / (2 * sizes.sum())
        bounds = np.cumsum(shares)
        labels = np.array(SPLITS)[np.minimum(np.searchsorted(bounds, mid, side="right"), 2)]
        assignment = dict(zip(order, labels))
        split[rows.index] = rows["source_group"].map(assignment)
    return split


def shared_groups(manifest: pd.DataFrame) -> list[str]:
    """Source groups that appear in more than one of train/val/test (should be empty)."""
    used = manifest[manifest["split"].isin(SPLITS)]
    counts = used.groupby("source_group")["split"].nunique()
    return sorted(counts[counts > 1].index)


def check_disjoint(manifest: pd.DataFrame) -> None:
    """Raise ValueError naming the groups if any source photo is in two splits."""
    shared = shared_groups(manifest)
    if shared:
        raise ValueError(f"{len(shared)} source photo(s) appear in more than one split, e.g. {shared[:5]}")
