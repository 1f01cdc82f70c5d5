"""Real-data checks on ../shared/data (six public crack datasets; see its SOURCES.md).

In CI (CI=true) a missing ../shared/data is a failure; elsewhere these tests are skipped.
"""
import pandas as pd
import pytest

from crack_utils import datasets, manifest as mf, splitting

pytestmark = pytest.mark.realdata
SIX = ["aiglern_trimm_lmm", "alexdonchuk_coarse", "cfd", "crack500_lmm", "deepcrack_lmm", "gaps384_lmm"]


def test_reads_all_six_datasets(shared_data):
    pairs = datasets.read_datasets(shared_data)
    assert sorted(pairs.dataset.unique()) == SIX
    for name in SIX:
        meta = pd.read_csv(shared_data / name / "meta.csv")
        assert (pairs.dataset == name).sum() == len(meta)
    assert not pairs.image_path.str.startswith("/").any()


def test_manifest_splits_and_leave_one_dataset_out_on_real_data(shared_data):
    # one test for everything that needs the prepared manifest: building it takes about a minute, and
    # make test hands tests to its two workers one at a time, so separate tests built it twice
    manifest, images, masks = mf.build_manifest(shared_data, "all", size=128, progress=False, seed=0)
    assert len(manifest) == 7469 and manifest.prepared.all()  # every shared pair is readable
    assert images.shape == (7469, 128, 128, 3) and masks.shape == (7469, 128, 128)
    # zero source photos shared between splits
    assert splitting.shared_groups(manifest) == []
    used = manifest[manifest.split != "excluded"]
    for name in SIX:
        assert (used.dataset == name).sum() > 0, name
    share = used.split.value_counts(normalize=True)
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["test"] < 0.13
    # Chambon-database photos appear in two datasets under two spellings: one group each, one split each
    chambon = manifest[manifest.source_group.str.startswith("chambon:")]
    both = chambon.groupby("source_group").dataset.nunique()
    assert (both == 2).sum() == 52  # 52 of aiglern_trimm_lmm's 53 photos are also in alexdonchuk_coarse
    # the coarse polygon set loses far more labels to screening than the fine CFD tracings
    rate = manifest.groupby("dataset").excluded.mean()
    assert rate["alexdonchuk_coarse"] > 0.3 and rate["cfd"] < 0.05
    # crack-free images exist only in alexdonchuk_coarse (12 empty masks)
    assert (manifest[manifest.crack_fraction == 0].dataset == "alexdonchuk_coarse").all()
    # one-pixel cracks survive resizing: CFD's thin 1-3 px tracings at 480x320 all keep a crack pixel
    cfd = manifest.dataset.to_numpy() == "cfd"
    assert masks[cfd].reshape(cfd.sum(), -1).any(axis=1).all()
    for held_out in ("aiglern_trimm_lmm", "alexdonchuk_coarse", "cfd"):
        _leave_one_dataset_out_never_trains_on_a_test_photo(manifest, held_out)


def _leave_one_dataset_out_never_trains_on_a_test_photo(manifest, held_out):
    split = splitting.grouped_split(manifest, seed=0, test_dataset=held_out)
    usable = ~manifest.excluded
    assert (split[usable & (manifest.dataset == held_out)] == "test").all()
    assert set(split[manifest.dataset != held_out]) <= {"train", "val", "excluded"}
    test_photos = set(manifest.source_group[split == "test"])
    assert not test_photos & set(manifest.source_group[split.isin(["train", "val"])])
    # the Chambon photos shared by the two datasets: the other dataset's copies are left out, not trained on
    left_out = usable & (split == "excluded")
    if held_out == "cfd":
        assert not left_out.any()
    else:
        assert left_out.sum() > 10 and manifest.source_group[left_out].str.startswith("chambon:").all(), held_out


def test_the_shared_copy_verifies_and_one_changed_byte_is_named(shared_data, tmp_path):
    """make verify-data on ../shared/data passes; a copy with one byte of one image changed fails, naming it."""
    import shutil

    from crack_utils.realdata import verify

    lines = []
    assert verify.verify(shared_data, out=lines.append), "\n".join(lines)
    assert "reproduces the data of the studies" in "\n".join(lines) and "seeds" in "\n".join(lines)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in SIX:
        if name != "cfd":
            (copy / name).symlink_to(shared_data / name, target_is_directory=True)
    shutil.copytree(shared_data / "cfd", copy / "cfd")
    image = copy / "cfd" / "images" / "040.jpg"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    lines.clear()
    assert not verify.verify(copy, out=lines.append)
    text = "\n".join(lines)
    assert "changed  cfd/images/040.jpg: same size" in text
    assert text.count("DIFFERS") == 1 and text.count("matches") == 5
