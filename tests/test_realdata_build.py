"""Rebuilding and verifying the six real datasets (crack_utils.realdata, issue 27), on tiny fixtures in the
formats of the three origin repositories: CFD's ``groundTruth/*.mat`` struct, the cropped sets'
``Datasets/<set>/<split>`` + ``<split>_lab`` JPEG labels, and the Supervisely ``ds/img`` + ``ds/masks_machine``
class maps, each committed into a small git repository at a commit the test pins. Nothing is read from the
network or from ../shared (the real copy is checked in tests/test_realdata.py)."""
import io
import random
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from crack_utils.realdata import build, checksums, convert, select, verify
from crack_utils.realdata.origins import ALEXDONCHUK, CFD, LMM, Origin, PatchSet


# ---- conversions ---------------------------------------------------------------------------------------
def test_jpeg_label_threshold_is_above_127():
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert convert.mask_from_jpeg_label(grey).tolist() == [[0, 0, 255, 255]]


def test_cfd_segmentation_keeps_label_2_and_reports_the_extra_labels():
    seg = np.array([[1, 2, 2], [3, 1, 4], [4, 1, 1]], dtype=np.uint8)
    mask, extra, pixels = convert.mask_from_cfd_segmentation(seg)
    assert mask.tolist() == [[0, 255, 255], [0, 0, 0], [0, 0, 0]]
    assert extra == [3, 4] and pixels == 3
    assert convert.mask_from_cfd_segmentation(np.array([[1, 2]]))[1:] == ([], 0)


def test_cfd_mat_file_is_read_from_its_struct():
    seg = np.array([[1, 2], [2, 1]], dtype=np.uint8)
    buffer = io.BytesIO()
    savemat(buffer, {"groundTruth": _cfd_struct(seg)})
    assert np.array_equal(convert.read_cfd_mat(buffer.getvalue()), seg)


def test_class_map_grey_or_rgb():
    classes = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    expected = [[0, 255], [255, 0]]
    assert convert.mask_from_class_map(classes).tolist() == expected
    assert convert.mask_from_class_map(np.dstack([classes] * 3)).tolist() == expected


def test_mask_png_is_byte_stable_and_lossless():
    mask = convert.binary_mask(np.random.default_rng(0).random((13, 17)) > 0.7)
    first, second = convert.encode_mask_png(mask), convert.encode_mask_png(mask.copy())
    assert first == second
    with Image.open(io.BytesIO(first)) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), mask)


def test_crack_darker_by_and_the_empty_mask_rule():
    grey = np.full((4, 4), 200, np.uint8)
    grey[1, :] = 50
    mask = np.zeros((4, 4), np.uint8)
    mask[1, :] = 255
    assert convert.crack_darker_by(grey, mask) == pytest.approx(150.0)
    assert np.isnan(convert.crack_darker_by(grey, np.zeros_like(mask)))  # empty mask: undefined, not 0
    assert convert.format_meta_value(float("nan")) == "nan" and convert.format_meta_value(None) == ""


def test_meta_row_rejects_a_mask_of_another_size():
    image = _jpeg(np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="x1 mask|mask is 10x9"):
        convert.meta_row("p", "p.jpg", image, np.zeros((9, 10), np.uint8), "p")


# ---- selection -----------------------------------------------------------------------------------------
def _patches(spec):
    """``{photo: [(split, index), ...]}`` -> Patch list."""
    return [select.Patch(i, s, photo) for photo, found in spec.items() for s, i in found]


def test_grid_patches_drop_random_crops_and_sort_by_index_then_split():
    patches = _patches({"a": [("test", 3), ("train", 3), ("train", 9), ("train", 0)]})
    assert select.grid_patches(patches, grid=3) == {"a": [select.Patch(0, "train", "a"),
                                                          select.Patch(3, "test", "a"), select.Patch(3, "train", "a")]}


def test_cap_draws_for_photos_over_the_cap_only_with_one_generator():
    by_photo = select.grid_patches(_patches({
        "a": [("train", i) for i in range(5)], "b": [("train", 0), ("train", 1)], "c": [("valid", i) for i in range(6)]}), 3)
    kept = select.cap_per_photo(by_photo, cap=3, seed=7)
    rng = random.Random(7)  # the documented rule, spelt out
    expected = rng.sample(by_photo["a"], 3) + by_photo["b"] + rng.sample(by_photo["c"], 3)
    assert kept == expected
    # a photo at or under the cap draws nothing: adding one does not change the other photos' draws
    more = dict(by_photo, aa=[select.Patch(0, "train", "aa")])
    assert [p for p in select.cap_per_photo(more, 3, 7) if p.photo != "aa"] == kept
    assert select.cap_per_photo(by_photo, None, 7) == [p for ph in sorted(by_photo) for p in by_photo[ph]]


def test_a_name_kept_from_two_splits_suffixes_the_second_copy_drawn():
    first, second = select.Patch(4, "test", "x"), select.Patch(4, "train", "x")
    ids = select.patch_ids([first, select.Patch(5, "train", "x"), second])
    assert ids[first] == "x-4" and ids[second] == "x-4_train" and ids[select.Patch(5, "train", "x")] == "x-5"


# ---- fixtures in the origins' formats -------------------------------------------------------------------
def _cfd_struct(seg):
    struct = np.empty((1, 1), dtype=[("Segmentation", "O"), ("Boundaries", "O")])
    struct[0, 0] = (seg, np.zeros_like(seg, dtype=bool))
    return struct


def _jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _photo(seed, h=12, w=16, grey=False):
    rng = np.random.default_rng(seed)
    image = rng.integers(120, 200, (h, w) if grey else (h, w, 3), dtype=np.uint8)
    image[h // 2] = 30
    return image


def _label(h=12, w=16):
    label = np.zeros((h, w), np.uint8)
    label[h // 2] = 255
    return label


def _git_repo(folder, files: dict[str, bytes]) -> str:
    """A git repository at ``folder`` with ``files`` committed; returns the commit."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True)
    subprocess.run(["git", *env, "-C", str(folder), "commit", "-qm", "fixture"], check=True)
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def origins(tmp_path, monkeypatch):
    """The three origins as tiny git repositories under ``tmp/origins/<owner>+<name>``, the module's pinned
    commits replaced by the fixtures' own."""
    root = tmp_path / "origins"
    seg = np.ones((12, 16), np.uint8)
    seg[6] = 2
    seg[0, 0] = 3
    mat = io.BytesIO()
    savemat(mat, {"groundTruth": _cfd_struct(seg)})
    cfd_files = {"groundTruth/001.mat": mat.getvalue(), "image/001.jpg": _jpeg(_photo(1)),
                 "image/201.jpg": _jpeg(_photo(2))}  # 201: no ground truth here, labelled in the "All in one" set
    lmm_files = {}
    for split, photo, index, seed in [("train", "p", 0, 3), ("train", "p", 1, 4), ("test", "p", 1, 5),
                                      ("train", "p", 2, 6), ("valid", "p", 3, 7), ("train", "p", 9, 8),
                                      ("test", "q", 0, 9)]:
        lmm_files[f"Datasets/Tiny/{split}/{photo}-{index}.jpg"] = _jpeg(_photo(seed))
        lmm_files[f"Datasets/Tiny/{split}_lab/{photo}-{index}.jpg"] = _jpeg(_label())
    coarse = np.zeros((12, 16), np.uint8)
    coarse[5:8] = 1
    alex_files = {"ds/img/001.jpg": cfd_files["image/001.jpg"],  # a copy of CFD 001: dropped
                  "ds/img/201.jpg": cfd_files["image/201.jpg"], "ds/masks_machine/201.png": _png(coarse),
                  "ds/img/Im_GT_LCMS_1aor.png": _png(_photo(10, grey=True)),
                  "ds/masks_machine/Im_GT_LCMS_1aor.png": _png(np.dstack([coarse] * 3)),
                  "ds/img/Im_noGT_LCMS_1aor.png": _png(_photo(10, grey=True)),  # the same bytes: dropped
                  "ds/masks_machine/Im_noGT_LCMS_1aor.png": _png(coarse)}
    for name, files in ((CFD, cfd_files), (LMM, lmm_files), (ALEXDONCHUK, alex_files)):
        commit = _git_repo(root / name.mirror_name, files)
        monkeypatch.setattr(build, {CFD: "CFD", LMM: "LMM", ALEXDONCHUK: "ALEXDONCHUK"}[name],
                            Origin(name.repo, commit))
    monkeypatch.setattr(build, "ORIGINS", (build.CFD, build.LMM, build.ALEXDONCHUK))
    monkeypatch.setattr(build, "PATCH_SETS", (PatchSet("tiny_lmm", "Tiny", grid=3, cap=2),))
    return root


def test_build_from_the_origins_converts_selects_and_names_pairs(tmp_path, origins):
    out = tmp_path / "data"
    counts = build.build(out, origins)
    assert counts == {"cfd": 1, "tiny_lmm": 3, "alexdonchuk_coarse": 2}
    cfd = pd.read_csv(out / "cfd" / "meta.csv", dtype={"id": str})
    assert cfd.loc[0, ["id", "cfd_extra_labels", "cfd_extra_label_pixels"]].tolist() == ["001", 3, 1]
    assert (out / "cfd/images/001.jpg").read_bytes() == _jpeg(_photo(1))  # images are the origin's bytes
    with Image.open(out / "cfd/masks/001.png") as im:
        assert np.array_equal(np.asarray(im) > 0, np.arange(12)[:, None].repeat(16, 1) == 6)
    tiny = pd.read_csv(out / "tiny_lmm" / "meta.csv")
    # p has 5 grid patches (p-9 is a random crop) -> capped at 2 by random.Random(seed); q (1 patch) kept
    rng = random.Random(build.SELECTION_SEED)
    grid = [select.Patch(i, s, "p") for i, s in [(0, "train"), (1, "test"), (1, "train"), (2, "train"), (3, "valid")]]
    drawn = rng.sample(grid, 2)
    assert sorted(tiny["id"]) == sorted([*select.patch_ids(drawn).values(), "q-0"])
    assert set(tiny.columns) >= {"grid_row", "grid_col", "grid_n", "source_image", "orig_split"}
    alex = pd.read_csv(out / "alexdonchuk_coarse" / "meta.csv")
    assert alex["id"].tolist() == ["cfdextra_201", "chambon_LCMS_1aor"]  # CFD copy and repeat dropped
    assert alex["source_image"].tolist() == ["CFD image 201 (no official CFD ground truth)", "Im_GT_LCMS_1aor"]
    assert alex["mode"].tolist() == ["RGB", "L"]


def test_a_rebuilt_copy_verifies_and_one_changed_byte_is_named(tmp_path, origins, monkeypatch):
    out = tmp_path / "data"
    build.build(out, origins)
    listing = tmp_path / "list.csv.gz"
    checksums.write_list(checksums.file_table(out, ["cfd", "tiny_lmm", "alexdonchuk_coarse"], pixels=True), listing)
    monkeypatch.setattr(checksums, "DATASETS", {"cfd": 0, "tiny_lmm": 0, "alexdonchuk_coarse": 0})
    monkeypatch.setattr(verify, "DATASETS", {"cfd": 0, "tiny_lmm": 0, "alexdonchuk_coarse": 0})
    lines = []
    assert verify.verify(out, listing, out=lines.append), lines
    again = tmp_path / "again"  # a second build gives the same bytes (masks, meta.csv)
    build.build(again, origins)
    assert verify.verify(again, listing, out=lines.append)
    image = out / "tiny_lmm" / "images" / "q-0.jpg"
    data = bytearray(image.read_bytes())
    data[-3] ^= 1
    image.write_bytes(bytes(data))
    (out / "cfd" / "masks" / "001.png").unlink()
    (out / "cfd" / "images" / "stray.jpg").write_bytes(b"x")
    lines.clear()
    assert not verify.verify(out, listing, out=lines.append)
    text = "\n".join(lines)
    assert "changed  tiny_lmm/images/q-0.jpg: same size" in text
    assert "missing  cfd/masks/001.png" in text and "extra    cfd/images/stray.jpg" in text
    assert "alexdonchuk_coarse" in text and text.count("matches") == 1
    assert verify.main([str(out), "--list", str(listing)]) == 1
    # a mask written by another PNG encoder (other zlib settings): other bytes, the same pixels -> matches
    mask = again / "tiny_lmm" / "masks" / "q-0.png"
    pixels = np.asarray(Image.open(mask))
    Image.fromarray(pixels).save(mask, format="PNG", compress_level=1)
    assert mask.read_bytes() != (tmp_path / "data" / "tiny_lmm" / "masks" / "q-0.png").read_bytes()
    lines.clear()
    assert verify.verify(again, listing, out=lines.append), lines
    assert "1 mask(s) have other PNG bytes but the listed pixels" in "\n".join(lines)
    Image.fromarray(255 - pixels).save(mask, format="PNG")  # other pixels: a real difference
    assert not verify.verify(again, listing, out=lines.append)


def test_building_some_datasets_verifies_only_those(tmp_path, origins, monkeypatch, capsys):
    out = tmp_path / "data"
    build.build(out, origins)
    listing = tmp_path / "list.csv.gz"
    checksums.write_list(checksums.file_table(out, ["cfd", "tiny_lmm", "alexdonchuk_coarse"], pixels=True), listing)
    monkeypatch.setattr(checksums, "checksum_list_path", lambda: listing)
    monkeypatch.setattr(verify, "DATASETS", {"cfd": 0, "tiny_lmm": 0, "alexdonchuk_coarse": 0})
    assert build.main(["--out", str(tmp_path / "one"), "--origins", str(origins), "--datasets", "tiny_lmm"]) == 0
    assert "tiny_lmm" in capsys.readouterr().out and not (tmp_path / "one" / "cfd").exists()
    assert build.main(["--out", str(tmp_path / "two"), "--origins", str(origins), "--datasets", "cdf"]) == 2
    assert "unknown dataset(s) cdf" in capsys.readouterr().err


def test_a_missing_origin_or_commit_is_a_clear_error(tmp_path, origins, monkeypatch):
    with pytest.raises(build.BuildError, match="no local copy of .*CrackForest"):
        build.build(tmp_path / "out", tmp_path / "nowhere")
    monkeypatch.setattr(build, "CFD", Origin(CFD.repo, "0" * 40))
    monkeypatch.setattr(build, "ORIGINS", (build.CFD, build.LMM, build.ALEXDONCHUK))
    with pytest.raises(build.BuildError, match="does not hold commit 0000"):
        build.build(tmp_path / "out", origins)


def test_the_committed_list_covers_the_six_datasets():
    table = checksums.read_list()
    per_dataset = table["path"].map(checksums.dataset_of).value_counts()
    # two files per pair plus meta.csv; pair counts of SOURCES.md
    pairs = {"cfd": 118, "deepcrack_lmm": 3191, "crack500_lmm": 2855, "gaps384_lmm": 972,
             "aiglern_trimm_lmm": 136, "alexdonchuk_coarse": 197}
    assert per_dataset.to_dict() == {d: 2 * n + 1 for d, n in pairs.items()}
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all() and (table["size"] > 0).all()
