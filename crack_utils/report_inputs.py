"""The test split as notebook 05 needs it, from the prepared arrays or from the report's committed compact copy.

Notebook 05 reads the test masks (false-positive distances, Figure 2) and the images of the few Figure 2
examples. The prepared arrays (``01_data/prepared.npz``, hundreds of MB) are git-ignored, so a clone of the
repository could not rerun the report. Each execution of notebook 05 therefore also writes
``05_report/test_split.npz`` (committed): the test keys, the masks bit-packed, and the example images
losslessly — a few hundred KB for the 709 real test images. On a rerun without the prepared arrays, notebook 05
reads that file from the study's published report folder (``layout.report_dir``); the manifest, the
predictions (``04_evaluate/<tag>/predictions.npz``) and every score file are committed too, so the report
reruns from committed files alone.

Shapes: masks ``(N, S, S)`` bool, images ``(K, S, S, 3)`` uint8, in the order of the keys asked for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crack_utils import manifest as mf
from crack_utils.study import layout

COMPACT_TEST_SPLIT = layout.COMPACT_TEST_SPLIT  # in 05_report/: written by notebook 05, read back when data are missing


@dataclass
class TestSplit:
    """``rows``: the manifest rows of the test split (manifest order); ``masks`` (N, S, S) bool in that order;
    ``images``: key -> (S, S, 3) uint8 for the images this source holds (all, or the Figure 2 examples);
    ``source``: the file they came from."""

    rows: pd.DataFrame
    masks: np.ndarray
    images: dict
    source: Path

    @property
    def size(self) -> int:
        return int(self.masks.shape[1])

    def masks_of(self, keys) -> np.ndarray:
        position = {k: i for i, k in enumerate(self.rows["key"])}
        return self.masks[[position[k] for k in keys]]

    def images_of(self, keys) -> np.ndarray:
        """(K, S, S, 3) uint8; a ValueError names keys this source has no image for."""
        missing = [k for k in keys if k not in self.images]
        if missing:
            raise ValueError(
                f"{self.source} holds no image for {missing[:5]} (it keeps the Figure 2 examples of the run "
                f"that wrote it: {sorted(self.images)[:8]}); run the data stage to get the prepared arrays, "
                "or keep N_EXAMPLES as it was")
        return np.stack([self.images[k] for k in keys])


def compact_path(results) -> Path:
    """The committed compact copy of a study's test split: ``results/<name>/05_report/test_split.npz``."""
    return layout.report_dir(results) / COMPACT_TEST_SPLIT


def load_test_split(data_dir, results) -> TestSplit:
    """The test split of the study in ``results``: from ``data_dir``'s prepared arrays when they exist, else
    from :func:`compact_path`. FileNotFoundError names both when neither exists."""
    data_dir = Path(data_dir)
    prepared = data_dir / layout.PREPARED_ARRAYS
    if prepared.is_file():
        rows, images, masks = mf.load_split(data_dir, "test")
        return TestSplit(rows, masks.astype(bool), dict(zip(rows["key"], images)), prepared)
    compact = compact_path(results)
    if not compact.is_file():
        raise FileNotFoundError(f"neither the prepared arrays {prepared} nor the report's compact test split "
                                f"{compact} exist; run the data stage (notebook 01) first")
    rows = mf.load_manifest(data_dir)
    rows = rows[rows["split"] == "test"].reset_index(drop=True)
    with np.load(compact) as saved:
        keys = saved["keys"].tolist()
        size = int(saved["size"])
        masks = np.unpackbits(saved["masks"], axis=-1)[..., :size].astype(bool)
        examples = dict(zip(saved["example_keys"].tolist(), saved["example_images"]))
    if keys != rows["key"].tolist():
        raise ValueError(f"{compact} was written for another test split than {data_dir / 'manifest.csv'} "
                         f"({len(keys)} vs {len(rows)} keys); run the data stage to rebuild the prepared arrays")
    return TestSplit(rows, masks, examples, compact)


def save_compact(path, split: TestSplit, example_keys) -> Path:
    """Write the compact copy atomically: the test keys, masks bit-packed along the last axis, and the
    images of ``example_keys`` (lossless). Returns ``path``."""
    path = Path(path)
    example_keys = list(example_keys)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # in lab mode the notebook overwrites what it read
    np.savez_compressed(tmp, keys=np.asarray(split.rows["key"].tolist(), dtype=str),
                        masks=np.packbits(split.masks.astype(bool), axis=-1), size=np.array(split.size),
                        example_keys=np.asarray(example_keys, dtype=str),
                        example_images=split.images_of(example_keys).astype(np.uint8))
    os.replace(tmp, path)
    return path
