"""The report's test split: from the prepared arrays, or from the compact copy notebook 05 commits."""
import numpy as np
import pandas as pd
import pytest

from crack_utils import report_inputs
from crack_utils.preprocess import save_cache
from crack_utils.study import layout


def _study(tmp_path, n=6, size=8):
    """A study folder with a manifest (4 test rows, 2 train rows) and prepared arrays."""
    rng = np.random.default_rng(0)
    keys = [f"set/{i}" for i in range(n)]
    splits = ["train", "test", "test", "train", "test", "test"][:n]
    data = layout.data_dir(tmp_path)
    data.mkdir(parents=True)
    pd.DataFrame({"key": keys, "id": [str(i) for i in range(n)], "split": splits, "dataset": "set",
                  "crack_fraction": np.linspace(0.01, 0.2, n)}).to_csv(data / "manifest.csv", index=False)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = rng.random((n, size, size)) > 0.7
    save_cache(data / layout.PREPARED_ARRAYS, images, masks, keys)
    test = [i for i, s in enumerate(splits) if s == "test"]
    return data, images[test], masks[test], [keys[i] for i in test]


def test_compact_copy_gives_back_the_masks_and_the_example_images(tmp_path):
    data, images, masks, keys = _study(tmp_path, size=9)  # 9 px: the packed rows are padded, unpacking cuts them
    full = report_inputs.load_test_split(data, tmp_path)
    assert full.rows.key.tolist() == keys and full.size == 9
    np.testing.assert_array_equal(full.masks, masks)
    np.testing.assert_array_equal(full.images_of([keys[2], keys[0]]), images[[2, 0]])
    layout.report_dir(tmp_path).mkdir()
    report_inputs.save_compact(report_inputs.compact_path(tmp_path), full, [keys[1], keys[3]])
    (data / layout.PREPARED_ARRAYS).unlink()
    compact = report_inputs.load_test_split(data, tmp_path)
    assert compact.source == report_inputs.compact_path(tmp_path) and compact.masks.dtype == bool
    np.testing.assert_array_equal(compact.masks, masks)
    np.testing.assert_array_equal(compact.masks_of([keys[3]]), masks[[3]])
    np.testing.assert_array_equal(compact.images_of([keys[3], keys[1]]), images[[3, 1]])
    with pytest.raises(ValueError, match=r"test_split.npz holds no image for \['set/1'\]"):
        compact.images_of([keys[0]])


def test_missing_data_and_a_stale_copy_are_errors_that_name_the_files(tmp_path):
    data, _, _, keys = _study(tmp_path)
    full = report_inputs.load_test_split(data, tmp_path)
    (data / layout.PREPARED_ARRAYS).unlink()
    with pytest.raises(FileNotFoundError, match="prepared.npz.*05_report/test_split.npz"):
        report_inputs.load_test_split(data, tmp_path)
    layout.report_dir(tmp_path).mkdir()
    report_inputs.save_compact(report_inputs.compact_path(tmp_path), full, keys[:1])
    manifest = pd.read_csv(data / "manifest.csv")
    manifest.loc[0, "split"] = "test"  # the data stage was rerun with another split
    manifest.to_csv(data / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="another test split"):
        report_inputs.load_test_split(data, tmp_path)
