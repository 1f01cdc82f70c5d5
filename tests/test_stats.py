import numpy as np
import pytest

from crack_utils import stats


def test_seed_summary():
    s = stats.seed_summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert s["ci_low"] == pytest.approx(0.6 - 4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    one = stats.seed_summary([0.4])
    assert one["mean"] == 0.4 and np.isnan(one["std"])
    with pytest.raises(ValueError):
        stats.seed_summary([])


def test_paired_comparison_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    b = rng.random(200)
    shifted = stats.paired_comparison(b + 0.05 + rng.normal(0, 0.01, 200), b)
    assert shifted["ci_low"] > 0 and shifted["wilcoxon_p"] < 1e-6
    assert shifted["mean_diff"] == pytest.approx(0.05, abs=0.005)
    same = stats.paired_comparison(b, b)
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] == 1.0
    noise = stats.paired_comparison(b + rng.normal(0, 0.01, 200), b)
    assert noise["ci_low"] < 0 < noise["ci_high"]
    with pytest.raises(ValueError):
        stats.paired_comparison([1, 2], [1])


def test_report_summaries(tmp_path):
    import pandas as pd

    from crack_utils import figures, report

    for loss, shift in (("distance", 0.1), ("dice", 0.0)):
        for seed in (0, 1):
            folder = tmp_path / "04_evaluate" / f"{loss}-seed{seed}"
            folder.mkdir(parents=True)
            pd.DataFrame({"key": list("abcdef"), "dice": np.linspace(0.2, 0.7, 6) + shift}).to_csv(folder / "per_image.csv", index=False)
            pd.DataFrame({"key": list("ab"), "fp_pixels": [10, 0], "fp_far_5px": [4, 0], "fp_far_20px": [1, 0],
                          "betti0_error": [1, 0], "cldice": [0.5, 1.0], "tol_f1": [0.6, 1.0]}).to_csv(folder / "claims.csv", index=False)
    paired = report.paired_comparisons(tmp_path, ["dice", "distance"], [0, 1])
    assert paired.comparison.tolist() == ["distance - dice"] and paired.mean_diff.iloc[0] == pytest.approx(0.1)
    rows = report.load_claims(tmp_path, ["dice", "distance"], [0, 1])
    summary = report.summarize_claims(rows).set_index("loss")
    assert summary.loc["dice", "fp_far_5px_share"] == pytest.approx(0.4)
    assert summary.loc["dice", "fp_far_20px_share"] == pytest.approx(0.1)
    figures.claim_distributions(rows)
    scores = pd.DataFrame({"loss": ["dice", "dice"], **{m: [0.5, 0.7] for m in ["precision", "recall", "f1", "iou", "dice"]},
                           **{f"macro_{m}": [0.4, 0.6] for m in ["precision", "recall", "f1", "iou", "dice"]}})
    table = report.seed_statistics(scores)
    assert len(table) == 10 and table.set_index("metric").loc["dice", "mean"] == pytest.approx(0.6)


def test_false_positive_distance_histogram_by_hand(tmp_path):
    from crack_utils import evaluation, figures, report

    masks = np.zeros((2, 32, 32), bool)
    masks[0, :, 0] = True                      # a crack along the left edge of image 0; image 1 is crack-free
    pred = masks.copy()
    pred[0, 5, 3] = True                       # 3 px from the crack -> bin [2, 4)
    pred[0, 5, 25] = pred[0, 6, 25] = True     # 25 px -> bin [24, 26)
    pred[1, 0, 0] = True                       # on a crack-free image -> the last bin
    folder = tmp_path / "04_evaluate" / "dice-seed0"
    folder.mkdir(parents=True)
    evaluation.save_predictions(folder / "predictions.npz", ["a", "b"], pred)
    hist = report.false_positive_distance_histogram(tmp_path, ["dice"], [0], masks, ["a", "b"], max_px=30, bin_px=2)
    counts = dict(zip(hist.from_px, hist.pixels))
    assert counts[2.0] == 1 and counts[24.0] == 2 and counts[30.0] == 1 and hist.pixels.sum() == 4
    assert hist.to_px.iloc[-1] == np.inf and hist.cumulative_share.iloc[-1] == pytest.approx(1.0)
    assert hist.share.sum() == pytest.approx(1.0)
    figures.false_positive_distance_histogram(hist)


def test_ablation_table_and_alpha_curve(tmp_path):
    import json

    import pandas as pd

    from crack_utils import figures, report

    specs = {"dice": {"loss": "dice", "normalization": "radius", "radius": 20.0, "options": {}},
             "distance": {"loss": "distance", "normalization": "radius", "radius": 20.0, "options": {"alpha": 4.0, "mode": "soft"}},
             "a2": {"loss": "distance", "normalization": "radius", "radius": 20.0, "options": {"alpha": 2.0, "mode": "soft"}},
             "diag": {"loss": "distance", "normalization": "diagonal", "radius": 20.0, "options": {"alpha": 4.0, "mode": "soft"}}}
    for i, name in enumerate(specs):
        folder = tmp_path / "04_evaluate" / f"{name}-seed0"
        folder.mkdir(parents=True)
        (folder / "scores.json").write_text(json.dumps({"n_test": 4, **{m: 0.5 + 0.01 * i for m in ["precision", "recall", "f1", "iou", "dice"]}}))
        pd.DataFrame({"key": list("abcd"), "dice": np.array([0.2, 0.4, 0.6, 0.8]) + 0.01 * i}).to_csv(folder / "per_image.csv", index=False)
        pd.DataFrame({"key": list("ab"), "fp_pixels": [10, 0], "fp_far_5px": [i, 0], "fp_far_20px": [0, 0],
                      "betti0_error": [1, 0], "cldice": [0.5, 1.0], "tol_f1": [0.6, 1.0]}).to_csv(folder / "claims.csv", index=False)
    table = report.ablation_table(tmp_path, specs, list(specs), [0])
    assert table.run.tolist() == list(specs) and np.isnan(table.diff_vs_dice.iloc[0])
    assert table.set_index("run").diff_vs_dice.tolist()[1:] == pytest.approx([0.01, 0.02, 0.03])
    assert table.set_index("run").loc["diag", "setting"] == "distance: alpha=4.0, mode=soft; normalization=diagonal"
    assert table.fp_far_5px_share.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    curve = report.alpha_curve(table)
    assert curve.run.tolist() == ["dice", "a2", "distance"] and curve.alpha.tolist() == [1.0, 2.0, 4.0]
    figures.alpha_curve(curve, table.iloc[0])
