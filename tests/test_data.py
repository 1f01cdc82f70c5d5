import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from crack_utils import datasets, manifest as mf, preprocess, splitting, synthetic, validation
from crack_utils.study.config import ConfigError, load_config


def save(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def pair(folder, stem, size=(20, 16), mask=None, image_ext=".png"):
    """An image/mask pair whose crack (a dark row) is darker than the textured background."""
    h, w = size
    seed = int(hashlib.md5(stem.encode()).hexdigest()[:8], 16)
    image = np.random.default_rng(seed).integers(120, 200, (h, w, 3), dtype=np.uint8)
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
        mask[h // 2, :] = 255
    if mask.ndim == 2 and mask.shape == (h, w):
        image[mask > 0] = 40
    save(folder / "images" / f"{stem}{image_ext}", image)
    save(folder / "masks" / f"{stem}.png", mask)


# ---- synthetic data -------------------------------------------------------------------------------------
def test_synthetic_pairs_are_seeded_and_plausible():
    a_img, a_mask, _ = synthetic.generate_pair(7)
    b_img, b_mask, _ = synthetic.generate_pair(7)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert set(np.unique(a_mask)) <= {0, 255}
    assert 0.001 < (a_mask > 0).mean() < 0.2
    grey = a_img.mean(axis=2)
    assert grey[a_mask > 0].mean() < grey[a_mask == 0].mean() - 10  # cracks are darker
    _, free, _ = synthetic.generate_pair(8, crack_free=True)
    assert not free.any()


def test_synthetic_dataset_is_idempotent_and_readable(tmp_path):
    root = synthetic.generate_dataset(tmp_path / "syn", n_images=6, size=64, seed=3, progress=False)
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    synthetic.generate_dataset(tmp_path / "syn", n_images=6, size=64, seed=3, progress=False)
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    pairs = datasets.read_datasets(tmp_path, ["syn"])
    assert len(pairs) == 6 and (pairs.image_path.str.startswith("syn/images/")).all()
    meta = pd.read_csv(root / "meta.csv")
    assert (meta.crack_fraction == 0).sum() == 1  # 15 % of 6, rounded


# ---- readers --------------------------------------------------------------------------------------------
def test_folder_layout_pairs_by_stem_not_position(tmp_path):
    ds = tmp_path / "mine"
    pair(ds, "b")
    pair(ds, "a", image_ext=".jpg")
    pairs = datasets.read_dataset(ds, tmp_path)
    assert pairs.id.tolist() == ["a", "b"]
    assert pairs.image_path.tolist() == ["mine/images/a.jpg", "mine/images/b.png"]
    assert pairs.mask_path.tolist() == ["mine/masks/a.png", "mine/masks/b.png"]


def test_kaggle_layout(tmp_path):
    root = tmp_path / "crack_segmentation_dataset"
    pair(root / "train", "CFD_001")
    pair(root / "train", "CRACK500_20160222_080850_1_361")
    pair(root / "test", "CRACK500_20160222_080850_1_362")
    pairs = datasets.read_datasets(root)
    assert sorted(pairs.orig_split.unique()) == ["test", "train"]
    assert pairs.loc[pairs.id.str.contains("361"), "source_group"].item() == "CRACK500_20160222_080850"
    checked = validation.validate_pairs(pairs, root, progress=False)  # paths are relative to the data root
    assert (checked.problem == "").all()


def test_source_groups_and_families():
    assert datasets.derive_source_group("11111-10") == "11111"
    assert datasets.derive_source_group("CFD_001") == "CFD_001"
    assert datasets.canonical_source_group("Im_GT_LCMS_31cor") == datasets.canonical_source_group("LCMS_31c") == "chambon:LCMS_31c"
    assert datasets.canonical_source_group("Im_noGT_AIGLE_RN_02bor") == "chambon:AIGLE_RN_02b"
    assert datasets.canonical_source_group("Im_GT_ESAR_20a") == "chambon:ESAR_20a"
    assert datasets.canonical_source_group("20160222_080850") == "20160222_080850"


def test_missing_and_empty_folders_name_the_folder(tmp_path):
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.read_dataset(tmp_path / "nope")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(datasets.DatasetError, match="empty.*no image/mask files"):
        datasets.read_dataset(tmp_path / "empty", tmp_path)
    with pytest.raises(datasets.DatasetError, match="no dataset folders"):
        datasets.read_datasets(tmp_path / "empty" / "images")


def test_duplicate_ids_within_a_dataset(tmp_path):
    ds = tmp_path / "dup"
    pair(ds, "x")
    save(ds / "images" / "x.jpg", np.zeros((20, 16, 3), np.uint8))
    with pytest.raises(datasets.DatasetError, match="duplicate id 'x'"):
        datasets.read_dataset(ds, tmp_path)


# ---- validation cases -------------------------------------------------------------------------------------
def problems_for(tmp_path, build):
    ds = tmp_path / "ds"
    pair(ds, "good")
    build(ds)
    checked = validation.validate_pairs(datasets.read_dataset(ds, tmp_path), tmp_path, progress=False)
    return checked.set_index("id")


def test_truncated_jpeg(tmp_path):
    def build(ds):
        buf = io.BytesIO()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 100).save(buf, format="JPEG")
        (ds / "images" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        save(ds / "masks" / "cut.png", np.zeros((40, 40), np.uint8))
    checked = problems_for(tmp_path, build)
    assert "truncated image file" in checked.loc["cut", "problem"] and "cut.jpg" in checked.loc["cut", "problem"]
    assert checked.loc["good", "problem"] == ""


def test_unreadable_image(tmp_path):
    def build(ds):
        (ds / "images" / "junk.png").write_bytes(b"not an image")
        save(ds / "masks" / "junk.png", np.zeros((4, 4), np.uint8))
    assert "unreadable image file" in problems_for(tmp_path, build).loc["junk", "problem"]


def test_rgb_mask(tmp_path):
    def build(ds):
        pair(ds, "rgb", mask=np.zeros((20, 16), np.uint8))
        colour = np.zeros((20, 16, 3), np.uint8)
        colour[5, :, 0] = 255
        save(ds / "masks" / "rgb.png", colour)
    message = problems_for(tmp_path, build).loc["rgb", "problem"]
    assert "colour image" in message and "rgb.png" in message


def test_grey_stored_as_rgb_is_accepted(tmp_path):
    mask = np.zeros((20, 16, 3), np.uint8)
    mask[3] = 255
    save(tmp_path / "m.png", mask)
    binary, notes = validation.read_mask(tmp_path / "m.png")
    assert binary.sum() == 16 and notes["converted_from"] == "RGB"


def test_zero_one_mask(tmp_path):
    mask = np.zeros((20, 16), np.uint8)
    mask[4] = 1
    save(tmp_path / "m.png", mask)
    binary, notes = validation.read_mask(tmp_path / "m.png")
    assert binary.sum() == 16 and notes["nonbinary_pixels"] == 0


def test_jpeg_noise_mask_is_thresholded_and_counted(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[10:13] = 255
    save(tmp_path / "m.jpg", mask, fmt="JPEG")
    binary, notes = validation.read_mask(tmp_path / "m.jpg")
    assert abs(int(binary.sum()) - 96) <= 8
    assert notes["nonbinary_pixels"] > 0


def test_size_mismatch(tmp_path):
    def build(ds):
        pair(ds, "big", size=(20, 16))
        save(ds / "masks" / "big.png", np.zeros((10, 16), np.uint8))
    message = problems_for(tmp_path, build).loc["big", "problem"]
    assert message.startswith("size mismatch") and "big.png" in message


def test_orphan_image_and_orphan_mask(tmp_path):
    def build(ds):
        save(ds / "images" / "lonely.png", np.zeros((8, 8, 3), np.uint8))
        save(ds / "masks" / "ghost.png", np.zeros((8, 8), np.uint8))
    checked = problems_for(tmp_path, build)
    assert "has no mask" in checked.loc["lonely", "problem"] and "lonely.png" in checked.loc["lonely", "problem"]
    assert "has no image" in checked.loc["ghost", "problem"] and "ghost.png" in checked.loc["ghost", "problem"]


def test_duplicate_images_across_datasets(tmp_path):
    pair(tmp_path / "one", "a")
    pair(tmp_path / "two", "a")  # same stem -> same bytes
    pair(tmp_path / "two", "b")
    checked = validation.validate_pairs(datasets.read_datasets(tmp_path), tmp_path, progress=False)
    assert checked.problem.tolist() == ["", "duplicate of one/a (same image bytes)", ""]


def test_dataset_without_any_valid_pair_names_the_folder(tmp_path):
    ds = tmp_path / "broken"
    (ds / "images").mkdir(parents=True)
    (ds / "images" / "x.png").write_bytes(b"junk")
    save(ds / "masks" / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(validation.BadPairError, match="broken.*no valid image/mask pair"):
        validation.validate_pairs(datasets.read_dataset(ds, tmp_path), tmp_path, progress=False)


# ---- resizing ---------------------------------------------------------------------------------------------
def test_one_pixel_diagonal_crack_survives_downscaling():
    from scipy import ndimage

    mask = np.zeros((448, 448), np.uint8)
    idx = np.arange(40, 400)
    mask[idx, idx] = 1
    small = preprocess.resize_mask(mask, 128)
    assert small.dtype == np.uint8 and set(np.unique(small)) == {0, 1}
    labels, n = ndimage.label(small, structure=np.ones((3, 3)))
    assert n == 1  # still one connected crack
    assert small.sum() < 3 * 103  # not thickened beyond a few pixels (length ~103 px at 128)


def test_vertical_one_pixel_crack_is_not_thickened_much():
    mask = np.zeros((256, 256), np.uint8)
    mask[:, 101] = 1
    small = preprocess.resize_mask(mask, 128)
    assert small.any(axis=0).sum() <= 2 and small.any(axis=1).all()


def test_upscaling_threshold_is_half():
    assert preprocess.mask_threshold((64, 64), 128) == 0.5
    assert preprocess.mask_threshold((448, 448), 128) == pytest.approx(0.5 / 3.5)


def test_image_resize_and_cache_roundtrip(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    assert preprocess.resize_image(image, 32).shape == (32, 32, 3)
    images = np.zeros((3, 8, 8, 3), np.uint8)
    images[1] = 9
    masks = np.zeros((3, 8, 8), np.uint8)
    preprocess.save_cache(tmp_path / "c.npz", images, masks, ["a", "b", "c"])
    got, _, ids = preprocess.load_cache(tmp_path / "c.npz", ["b", "a"])
    assert ids.tolist() == ["b", "a"] and got[0].max() == 9
    with pytest.raises(KeyError, match="zz"):
        preprocess.load_cache(tmp_path / "c.npz", ["zz"])


# ---- manifest and split ------------------------------------------------------------------------------------
def test_manifest_split_keeps_photos_together(tmp_path):
    for d in ("d1", "d2"):
        for photo in range(10):
            for patch in range(3):
                pair(tmp_path / d, f"{d}p{photo}-{patch}")
    manifest, images, masks = mf.build_manifest(tmp_path, "all", size=32, progress=False, seed=1)
    assert len(images) == len(manifest) == 60 and images.shape[1:] == (32, 32, 3)
    assert splitting.shared_groups(manifest) == []
    counts = manifest.groupby(["dataset", "split"]).size().unstack()
    assert set(counts.columns) == {"train", "val", "test"}, manifest.exclusion_reason.unique()
    assert (counts["train"] >= counts["test"]).all()
    out = tmp_path / "out"
    mf.save_manifest(manifest, images, masks, out)
    rows, imgs, msks = mf.load_split(out, "test")
    assert len(rows) == len(imgs) == len(msks) and (rows.split == "test").all()
    assert not any(str(tmp_path) in p for p in pd.read_csv(out / "manifest.csv").image_path)


def test_leave_one_dataset_out():
    frame = pd.DataFrame({"dataset": ["a"] * 10 + ["b"] * 4, "source_group": [f"g{i}" for i in range(14)],
                          "excluded": [False] * 13 + [True]})
    split = splitting.grouped_split(frame, seed=0, test_dataset="b")
    assert (split[frame.dataset == "b"].isin(["test", "excluded"])).all()
    assert split.iloc[-1] == "excluded"
    assert "test" not in set(split[frame.dataset == "a"])
    with pytest.raises(ValueError, match="not in the manifest"):
        splitting.grouped_split(frame, test_dataset="zzz")
    # a photo labelled in both datasets: all of b's copy is test, a's copy of it is left out, not trained on
    shared = pd.DataFrame({"dataset": ["a"] * 6 + ["b"] * 2, "excluded": [False] * 8,
                           "source_group": ["p0", "p0", "p1", "p2", "p3", "p4", "p0", "p5"]})
    split = splitting.grouped_split(shared, seed=0, test_dataset="b")
    assert list(split[shared.dataset == "b"]) == ["test", "test"]
    assert list(split[:2]) == ["excluded", "excluded"]
    assert set(split[2:6]) <= {"train", "val"}
    with pytest.raises(ValueError, match="sum"):
        splitting.grouped_split(frame, fractions=(0.5, 0.1, 0.1))


def test_exclusion_file(tmp_path):
    for i in range(6):
        pair(tmp_path / "d", f"p{i}")
    (tmp_path / "exclusions.csv").write_text("id,reason\nd/p1,blurry label\np2,\n")
    manifest, _, _ = mf.build_manifest(tmp_path, ["d"], size=32, exclusions_file=tmp_path / "exclusions.csv", progress=False)
    reasons = manifest.set_index("id").exclusion_reason
    assert reasons["p1"] == "manual: blurry label" and reasons["p2"].startswith("manual:")
    assert manifest.set_index("id").loc[["p1", "p2"], "split"].eq("excluded").all()
    summary = mf.exclusion_summary(manifest)
    assert summary.loc["d", "manual exclusion"] == 2


# ---- config -----------------------------------------------------------------------------------------------
def test_config_unknown_key_lists_valid_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("training: {epoks: 3}\n")
    with pytest.raises(ConfigError, match="unknown key 'training.epoks'.*epochs, batch_size"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("losses: [bce, focal]\n")
    with pytest.raises(ConfigError, match="'focal' is not one of 'bce', 'dice', 'distance'"):
        load_config(tmp_path / "d.yaml")


def test_config_variants_are_validated_and_expanded(tmp_path):
    from crack_utils.study.config import trainings

    good = tmp_path / "v.yaml"
    good.write_text("losses: [dice, distance]\nseeds: [0, 1]\nvariant_seeds: [0, 1]\n"
                    "loss_options: {distance: {alpha: 4.0, mode: soft}}\n"
                    "variants:\n  a2: {loss: distance, alpha: 2.0}\n  diag: {loss: distance, normalization: diagonal}\n"
                    "  lov: {loss: lovasz}\n")
    runs = trainings(load_config(good))
    assert [r["tag"] for r in runs] == ["dice-seed0", "distance-seed0", "dice-seed1", "distance-seed1",
                                        "a2-seed0", "diag-seed0", "lov-seed0", "a2-seed1", "diag-seed1", "lov-seed1"]
    a2, diag = runs[4], runs[5]
    assert a2["options"] == {"alpha": 2.0, "mode": "soft"} and a2["normalization"] == "radius"
    assert diag["options"] == {"alpha": 4.0, "mode": "soft"} and diag["normalization"] == "diagonal"
    bad = {"x: {loss: focal}": "needs `loss: <name>`", "x: {loss: distance, alpah: 2}": "accepts: alpha, mode",
           "x: {loss: distance, normalization: log}": "normalization must be one of",
           "dice: {loss: dice}": "name of a loss", "x-y: {loss: dice}": "letters, digits"}
    for body, message in bad.items():
        (tmp_path / "b.yaml").write_text(f"losses: [dice]\nvariants:\n  {body}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(tmp_path / "b.yaml")


def test_shipped_configs_load():
    from crack_utils.paths import repo_root

    import yaml

    paths = sorted((repo_root() / "configs").glob("*.yaml"))
    for path in paths:
        config = load_config(path)
        explicit = (yaml.safe_load(path.read_text()) or {}).get("name")
        # the results folder is the file's stem unless the config names one (to extend that study)
        assert config["name"] == (explicit or path.stem)
        if explicit:
            assert explicit in {p.stem for p in paths}


def test_git_state_ignores_results_but_not_code(tmp_path):
    import subprocess

    from crack_utils.run_metadata import git_state

    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
    run("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "results" / "table.csv").write_text("b\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True


def test_device_description_records_the_kernel_settings_in_the_environment(monkeypatch):
    from crack_utils.run_metadata import KERNEL_ENV_VARIABLES, device_description

    for name in KERNEL_ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert device_description()["cpu_kernel_env"] == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert device_description()["cpu_kernel_env"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
