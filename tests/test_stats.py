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
