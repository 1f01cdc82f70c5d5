import pandas as pd

from crack_utils import figures


def _rows(distractors):
    n = len(distractors)
    return pd.DataFrame({"key": [f"syn/{i:02d}" for i in range(n)], "dataset": "syn",
                         "crack_fraction": [0.01 * (i + 1) for i in range(n)], "distractors": distractors})


def test_examples_prefer_crack_like_distractors():
    rows = _rows(["", "shadow", "joint", "", "stain+shadow", "joint", "", "stain"])
    picks = figures.choose_examples(rows, 3)
    assert len(picks) == 3 and set(picks) <= {"syn/02", "syn/04", "syn/05", "syn/07"}
    assert figures.choose_examples(rows, 3) == picks  # deterministic
    plain = figures.choose_examples(rows, 3, prefer_distractors=False)
    assert plain != picks and len(plain) == 3


def test_examples_without_enough_distractors_or_column_spread_over_all_pairs():
    rows = _rows(["", "", "joint", "", "", ""])
    assert figures.choose_examples(rows, 3) == figures.choose_examples(rows, 3, prefer_distractors=False)
    real = _rows([""] * 6).drop(columns="distractors")  # real data has no distractor column
    assert len(figures.choose_examples(real, 4)) == 4


def test_synthetic_distractors_reach_the_manifest_and_real_data_manifests_do_not_change(tmp_path):
    import numpy as np
    from PIL import Image

    from crack_utils import synthetic
    from crack_utils.manifest import MANIFEST_COLUMNS, build_manifest

    root = synthetic.generate_dataset(tmp_path / "syn", n_images=8, size=64, seed=3, progress=False)
    manifest, _, _ = build_manifest(root, size=32, fractions=(0.5, 0.25, 0.25), progress=False)
    meta = pd.read_csv(root / "meta.csv", dtype={"id": str}).set_index("id")
    assert manifest.set_index("id")["distractors"].to_dict() == meta["distractors"].fillna("").to_dict()
    plain = tmp_path / "plain"
    for sub in ("images", "masks"):
        (plain / sub).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(plain / "images" / f"p{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[10, 4:28] = 255
        Image.fromarray(mask).save(plain / "masks" / f"p{i}.png")
    manifest, _, _ = build_manifest(plain, size=32, fractions=(0.5, 0.25, 0.25), progress=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS + ["prepared"]  # same columns as the committed manifests
