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
