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


def _study(per_seed_shift, n_images=400, noise=0.01, seed=0):
    """Paired differences of a simulated study: per seed, images scatter by ``noise`` around that seed's shift."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"seed": s, "key": np.arange(n_images), "diff": shift + rng.normal(0, noise, n_images)})
                      for s, shift in enumerate(per_seed_shift)], ignore_index=True)


def test_images_that_say_p_below_1e_10_but_seeds_that_disagree_are_not_supported():
    from scipy import stats as sps

    diffs = _study([+0.012, -0.014, -0.027])  # the compilation study's Distance - BCE per seed
    pooled_images = diffs.groupby("key")["diff"].mean()
    assert sps.wilcoxon(pooled_images).pvalue < 1e-10  # what an image-level test would have claimed
    result = stats.hierarchical_paired(diffs)
    assert result["evidence"] == "not supported" and result["seeds_agree"] == "2 of 3"
    assert result["ci_low"] < 0 < result["ci_high"] and result["p_seeds"] > 0.05
    per_seed = [float(d) for d in result["per_seed"].split()]
    assert per_seed == pytest.approx([0.012, -0.014, -0.027], abs=0.002)  # the image noise averages out per seed


def test_every_seed_agreeing_is_supported_and_the_interval_covers_the_seed_spread():
    diffs = _study([-0.050, -0.030, -0.003, -0.045, -0.009], noise=0.05)  # seeds/ Distance - BCE
    result = stats.hierarchical_paired(diffs)
    assert result["evidence"] == "supported" and result["seeds_agree"] == "5 of 5" and result["n_seeds"] == 5
    assert result["mean_diff"] == pytest.approx(-0.0274, abs=0.003)
    assert result["ci_high"] < 0 and result["p_seeds"] < 0.05
    # wider than an interval over images alone: the spread between trainings counts
    assert result["ci_high"] - result["ci_low"] > 0.02


def test_hierarchical_paired_by_hand_on_a_tiny_table():
    import pandas as pd

    diffs = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "key": ["a", "b"] * 3, "diff": [0.1, 0.3, 0.2, 0.2, 0.0, 0.2]})
    result = stats.hierarchical_paired(diffs, n_boot=4000)
    # per-seed means 0.2, 0.2, 0.1 -> mean 0.5/3; t = mean / (sd / sqrt 3) with sd = sqrt(1/300)
    assert result["per_seed"] == "+0.2000 +0.2000 +0.1000" and result["mean_diff"] == pytest.approx(0.5 / 3)
    t = (0.5 / 3) / (np.sqrt(1 / 300) / np.sqrt(3))
    from scipy import stats as sps

    assert result["p_seeds"] == pytest.approx(2 * sps.t.sf(t, 2))
    # every bootstrap mean lies between the smallest and largest possible resample means (0.0 and 0.3)
    assert 0.0 <= result["ci_low"] < result["mean_diff"] < result["ci_high"] <= 0.3
    assert result["n_images"] == 2 and result["seeds_agree"] == "3 of 3"


def test_fewer_than_three_seeds_give_no_interval_and_no_p_value():
    one = stats.hierarchical_paired(_study([-0.05]))
    assert one["evidence"] == "one training" and one["n_seeds"] == 1 and one["seeds_agree"] == "1 of 1"
    assert np.isnan(one["ci_low"]) and np.isnan(one["ci_high"]) and np.isnan(one["p_seeds"])
    two = stats.hierarchical_paired(_study([-0.05, -0.04]))
    assert two["evidence"] == "2 trainings" and np.isnan(two["p_seeds"])
    with pytest.raises(ValueError, match="missing"):
        stats.hierarchical_paired({"seed": [0], "diff": [0.1]})
    with pytest.raises(ValueError, match="no paired"):
        stats.hierarchical_paired({"seed": [], "key": [], "diff": []})


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
    assert paired.evidence.iloc[0] == "2 trainings" and np.isnan(paired.p_seeds.iloc[0])  # two seeds: no p-value
    assert paired.per_seed.iloc[0] == "+0.1000 +0.1000" and paired.seeds_agree.iloc[0] == "2 of 2"
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
    assert table.evidence.tolist() == ["", "one training", "one training", "one training"]
    assert table.p_seeds.isna().all() and table.ci_low.isna().all()  # one seed: no inference
    assert table.set_index("run").diff_vs_dice.tolist()[1:] == pytest.approx([0.01, 0.02, 0.03])
    assert table.set_index("run").loc["diag", "setting"] == "distance: alpha=4.0, mode=soft; normalization=diagonal"
    assert table.fp_far_5px_share.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    curve = report.alpha_curve(table)
    assert curve.run.tolist() == ["dice", "a2", "distance"] and curve.alpha.tolist() == [1.0, 2.0, 4.0]
    figures.alpha_curve(curve, table.iloc[0])


def test_regenerating_a_committed_studys_comparisons_from_its_csvs(tmp_path):
    """python -m crack_utils.tools.migrate --comparisons: paired_comparisons.csv from the per-image CSVs alone."""
    import json

    import pandas as pd

    from crack_utils.tools import migrate

    rng = np.random.default_rng(1)
    base = rng.random(50)
    for loss, shift in (("dice", 0.0), ("distance", -0.05)):
        for seed in (0, 1, 2):
            folder = tmp_path / "04_evaluate" / f"{loss}-seed{seed}"
            folder.mkdir(parents=True)
            pd.DataFrame({"key": [f"k{i}" for i in range(50)],
                          "dice": base + shift + rng.normal(0, 0.01, 50) + 0.002 * seed}).to_csv(folder / "per_image.csv", index=False)
    (tmp_path / "study_config.json").write_text(json.dumps({"losses": ["dice", "distance"], "seeds": [0, 1, 2]}))
    (tmp_path / "paired_comparisons.csv").write_text("comparison,wilcoxon_p\nold,1e-11\n")
    assert migrate.main(["--comparisons", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "paired_comparisons.csv")
    assert table.comparison.tolist() == ["distance - dice"] and "wilcoxon_p" not in table.columns
    row = table.iloc[0]
    assert row.evidence == "supported" and row.seeds_agree == "3 of 3" and row.n_seeds == 3
    assert row.mean_diff == pytest.approx(-0.05, abs=0.005) and row.ci_high < 0


def test_the_plateau_rule_on_histories():
    import pandas as pd

    from crack_utils.training_length import plateau_status, plateau_table

    rising = pd.DataFrame({"val_dice": [0.60, 0.70, 0.74, 0.75, 0.76, 0.770]})
    flat = pd.DataFrame({"val_dice": [0.60, 0.70, 0.74, 0.760, 0.758, 0.763]})
    assert not plateau_status(rising)["plateau"] and plateau_status(rising)["gain"] == pytest.approx(0.02)
    assert plateau_status(flat)["plateau"] and plateau_status(flat)["gain"] == pytest.approx(0.003)
    dip = pd.DataFrame({"val_dice": [0.6, 0.78, 0.70, 0.71]})  # below its best: no rise of the best
    assert plateau_status(dip)["plateau"] and plateau_status(dip)["best"] == 0.78
    assert not plateau_status(pd.DataFrame({"val_dice": [0.5, 0.6]}))["plateau"]  # too short to tell
    # the committed constant-rate study, seed 0: BCE's best was reached at pass 7 (on its plateau by 10),
    # Dice still rose 0.0053 from pass 8 to 10 (not on it)
    from crack_utils.paths import repo_root

    table = plateau_table(repo_root() / "results" / "convergence", ["bce", "dice", "distance"], [0]).set_index("loss")
    assert table.loc["bce", "plateau"] and table.loc["distance", "plateau"] and not table.loc["dice", "plateau"]
    assert table.loc["dice", "gain"] == pytest.approx(0.0054, abs=0.0002)


def test_the_bootstrap_counts_an_image_once_when_every_seed_scored_it():
    """Seeds and test images are crossed (every training is scored on the same images): with identical
    trainings the interval is the spread over images alone, sd / sqrt(images), not that over sqrt(seeds x images)."""
    import pandas as pd

    rng = np.random.default_rng(3)
    per_image = rng.normal(0.0, 0.1, 400)  # each image's difference, the same at every seed
    diffs = pd.concat([pd.DataFrame({"seed": s, "key": np.arange(400), "diff": per_image + 0.001 * s})
                       for s in range(5)], ignore_index=True)
    result = stats.hierarchical_paired(diffs)
    half = (result["ci_high"] - result["ci_low"]) / 2
    assert half == pytest.approx(1.96 * per_image.std() / np.sqrt(400), rel=0.2)  # nested would give ~1/sqrt(5) of it


def test_losses_scored_on_different_images_are_an_error_not_a_smaller_study(tmp_path):
    import pandas as pd

    from crack_utils import report

    for loss, keys in (("dice", list("abc")), ("distance", list("abd"))):
        folder = tmp_path / "04_evaluate" / f"{loss}-seed0"
        folder.mkdir(parents=True)
        pd.DataFrame({"key": keys, "dice": [0.5, 0.6, 0.7]}).to_csv(folder / "per_image.csv", index=False)
    with pytest.raises(ValueError, match="different test images at seed 0"):
        report.paired_comparisons(tmp_path, ["dice", "distance"], [0])
