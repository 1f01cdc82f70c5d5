"""The compact encoding that carries the prepared arrays to a GPU machine."""
import subprocess
import sys

import numpy as np
import pytest

from crack_utils.tools import compact_data
from crack_utils.preprocess import load_cache, save_cache


def _arrays(n=5, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.stack([np.stack([(xx * 4 + i * 10) % 256, (yy * 3) % 256, np.full_like(xx, 128)], -1)
                       for i in range(n)]).astype(np.uint8)  # smooth images: JPEG keeps them close
    masks = (rng.random((n, size, size)) > 0.9).astype(np.uint8)
    return images, masks


def test_masks_round_trip_exactly_and_images_closely():
    images, masks = _arrays()
    packed = compact_data.pack_masks(masks)
    assert packed.shape == (5, 32 * 32 // 8)
    np.testing.assert_array_equal(compact_data.unpack_masks(packed, 32), masks)
    data, offsets = compact_data.encode_images(images, quality=95)
    assert offsets[0] == 0 and offsets[-1] == len(data) and len(offsets) == 6
    back = compact_data.decode_images(data, offsets)
    assert back.shape == images.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - images).mean() < 3
    low = compact_data.decode_images(*compact_data.encode_images(images, quality=10))
    assert np.abs(low.astype(int) - images).mean() > np.abs(back.astype(int) - images).mean()
    with pytest.raises(ValueError, match="quality must be 1..100"):
        compact_data.encode_images(images, quality=0)


def test_prepared_file_round_trip_through_the_command_line(tmp_path):
    images, masks = _arrays(n=4, size=16)
    save_cache(tmp_path / "src" / "prepared.npz", images, masks, ["a", "b", "c", "d"])
    compact = tmp_path / "carry" / "data.npz"
    enc = subprocess.run([sys.executable, "-m", "crack_utils.tools.compact_data", "encode", str(tmp_path / "src"), str(compact),
                          "--quality", "95"], capture_output=True, text=True)
    assert enc.returncode == 0, enc.stderr
    dec = subprocess.run([sys.executable, "-m", "crack_utils.tools.compact_data", "decode", str(compact), str(tmp_path / "dst")],
                         capture_output=True, text=True)
    assert dec.returncode == 0, dec.stderr
    got_images, got_masks, ids = load_cache(tmp_path / "dst" / "prepared.npz")
    assert ids.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(got_masks, masks)
    assert got_images.shape == images.shape and np.abs(got_images.astype(int) - images).mean() < 4
    missing = subprocess.run([sys.executable, "-m", "crack_utils.tools.compact_data", "encode", str(tmp_path / "nowhere"),
                              str(compact)], capture_output=True, text=True)
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr
