"""Uncertainty over seeds and paired comparisons over test images."""
from __future__ import annotations

import numpy as np

# scipy.stats (~1 s to import) is imported where used: crack_utils.report, which every evaluation imports,
# needs it only for the study's summary tables.


def seed_summary(values) -> dict[str, float]:
    """Mean, standard deviation and 95 % t-interval of one metric over seeds (NaN spread for one seed)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("no values to summarize")
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 1}
    std = float(x.std(ddof=1))
    from scipy import stats as sps

    half = float(sps.t.ppf(0.975, n - 1) * std / np.sqrt(n))
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired_comparison(a, b, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Compare per-image scores ``a`` and ``b`` of the same images (``a - b``).

    Returns the mean difference, its 95 % percentile-bootstrap interval (images resampled with
    replacement, seeded) and the two-sided Wilcoxon signed-rank p-value (1.0 when all differences are 0).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"a and b must be 1-D score arrays of one non-zero length, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    from scipy import stats as sps

    boots = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    p = 1.0 if not np.any(diff) else float(sps.wilcoxon(diff).pvalue)
    return {"mean_diff": float(diff.mean()), "ci_low": float(np.percentile(boots, 2.5)),
            "ci_high": float(np.percentile(boots, 97.5)), "wilcoxon_p": p, "n_images": len(diff)}
