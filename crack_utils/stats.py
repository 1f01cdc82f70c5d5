"""Uncertainty over seeds, and paired comparisons between losses with trainings (seeds) as the unit of
evidence (:func:`hierarchical_paired`): the test images of one training say nothing about the next training,
so no interval over images alone is reported as a comparison of losses."""
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


#: Fewer trainings than this: no interval or p-value that claims to say anything about another training.
MIN_SEEDS_FOR_INFERENCE = 3
#: Columns of :func:`hierarchical_paired`'s result, in table order.
PAIRED_COLUMNS = ["mean_diff", "ci_low", "ci_high", "p_seeds", "n_seeds", "seeds_agree", "per_seed", "evidence",
                  "n_images"]


def trainings_label(n_seeds: int) -> str:
    """``"one training"``, ``"2 trainings"``, ...: what a comparison with too few seeds rests on."""
    return "one training" if n_seeds == 1 else f"{n_seeds} trainings"


def hierarchical_paired(diffs, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Loss A against loss B with **trainings as the unit of evidence**.

    ``diffs``: a table with columns ``seed``, ``key`` and ``diff`` — per test image (``key``) and training
    seed, A's score minus B's score of the same image, both trained with that seed (paired by seed and image).

    * ``mean_diff``: the mean over seeds of each seed's mean difference over its images (the grand mean when
      every seed scores the same images);
    * ``per_seed``: those per-seed differences, and ``seeds_agree`` (``"4 of 5"``): how many have the sign of
      ``mean_diff``;
    * ``ci_low``, ``ci_high``: 95 % percentile interval of the mean difference by a two-level bootstrap
      (``n_boot`` draws, seeded) that resamples both sources of variation: seeds with replacement, and test
      images with replacement. When every seed scored the same images (the study's design: seeds and images
      are crossed), each draw resamples one set of images and applies it to every drawn seed, so an image's
      difficulty counts once, not once per seed; otherwise images are resampled within each drawn seed;
    * ``p_seeds``: two-sided one-sample t-test of the per-seed differences against 0 (n_seeds − 1 degrees of
      freedom): whether the mean difference over trainings is 0;
    * ``evidence``: ``"supported"`` (A > B or A < B: interval excludes 0 and ``p_seeds`` < ``alpha``),
      ``"not supported"``, or with fewer than :data:`MIN_SEEDS_FOR_INFERENCE` seeds ``"one training"`` /
      ``"2 trainings"`` — and then no interval and no p-value (NaN): images of one training say nothing about
      the next training.

    Raises ValueError for an empty table or missing columns.
    """
    import pandas as pd

    diffs = pd.DataFrame(diffs)
    missing = {"seed", "key", "diff"} - set(diffs.columns)
    if missing:
        raise ValueError(f"diffs needs columns seed, key, diff; missing {sorted(missing)}")
    diffs = diffs.dropna(subset=["diff"])
    if diffs.empty:
        raise ValueError("no paired differences to compare")
    groups = [g["diff"].to_numpy(float) for _, g in diffs.groupby("seed", sort=True)]
    per_seed = np.array([g.mean() for g in groups])
    n = len(per_seed)
    mean = float(per_seed.mean())
    sign = np.sign(mean)
    out = {"mean_diff": mean, "ci_low": float("nan"), "ci_high": float("nan"), "p_seeds": float("nan"), "n_seeds": n,
           "seeds_agree": f"{int(np.sum(np.sign(per_seed) == sign)) if sign else 0} of {n}",
           "per_seed": " ".join(f"{d:+.4f}" for d in per_seed), "evidence": trainings_label(n),
           "n_images": int(round(np.mean([len(g) for g in groups])))}
    if n < MIN_SEEDS_FOR_INFERENCE:
        return out
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    table = diffs.pivot_table(index="seed", columns="key", values="diff", aggfunc="mean")
    if not table.isna().to_numpy().any():  # crossed: every seed scored the same images
        matrix = table.to_numpy(float)
        for b in range(n_boot):
            boots[b] = matrix[np.ix_(rng.integers(0, n, n), rng.integers(0, matrix.shape[1], matrix.shape[1]))].mean()
    else:  # nested: each seed its own images
        for b in range(n_boot):
            drawn = rng.integers(0, n, n)
            boots[b] = np.mean([groups[i][rng.integers(0, len(groups[i]), len(groups[i]))].mean() for i in drawn])
    from scipy import stats as sps

    spread = per_seed.std(ddof=1)
    p = 1.0 if spread == 0 and mean == 0 else 0.0 if spread == 0 else float(sps.ttest_1samp(per_seed, 0.0).pvalue)
    low, high = float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
    supported = (low > 0 or high < 0) and p < alpha
    out.update(ci_low=low, ci_high=high, p_seeds=p, evidence="supported" if supported else "not supported")
    return out
