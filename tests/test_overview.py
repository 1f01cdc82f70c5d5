"""results/index.html (crack_utils.overview, issue 24): verdicts with trainings as the unit, links that exist,
and the committed page as the one command builds it."""
import re

import numpy as np
import pandas as pd
import pytest

from crack_utils import overview
from crack_utils.paths import repo_root

RESULTS = repo_root() / "results"


def _result(mean, evidence="supported", n=5):
    return {"mean_diff": mean, "evidence": evidence, "n_seeds": n, "ci_low": mean - 0.01, "ci_high": mean + 0.01,
            "p_seeds": 0.01, "seeds_agree": f"{n} of {n}"}


def test_a_claim_is_supported_only_when_every_comparison_is_in_the_papers_direction():
    assert overview.claim_verdict([_result(0.05), _result(0.02)], "higher") == "supported"
    assert overview.claim_verdict([_result(-0.05), _result(-0.02)], "higher") == "not supported"  # the other way
    assert overview.claim_verdict([_result(0.05), _result(0.02, "not supported")], "higher") == "not supported"
    assert overview.claim_verdict([_result(-0.3)], "lower") == "supported"
    assert overview.claim_verdict([_result(0.05, "one training", n=1)], "higher") == "not tested"
    assert overview.claim_verdict([], "higher") == "not tested"


def _alpha(dice, far_fp, n=3):
    """One other α against α = 4: (mean difference, evidence) on Dice and on the far-FP share."""
    return {"Dice": _result(dice[0], dice[1], n), "far-FP share": _result(far_fp[0], far_fp[1], n)}


S, NS = "supported", "not supported"


def test_alpha_4_balances_only_when_every_gain_of_another_alpha_costs_the_other_measure():
    trade_off = {2.0: _alpha((0.03, S), (0.01, S)), 8.0: _alpha((-0.02, S), (-0.01, S))}
    assert overview.alpha_verdict(trade_off) == "supported"
    assert overview.alpha_verdict({2.0: trade_off[2.0], 8.0: _alpha((-0.02, NS), (0.0, NS))}) == "supported"  # one side
    # α 2 better on Dice and not significantly worse on far false positives: it dominates α 4
    assert overview.alpha_verdict({**trade_off, 2.0: _alpha((0.03, S), (0.01, NS))}) == "not supported"
    # α 8 fewer far false positives at no significant cost in Dice: dominates too
    assert overview.alpha_verdict({**trade_off, 8.0: _alpha((-0.02, NS), (-0.01, S))}) == "not supported"
    # better on both measures
    assert overview.alpha_verdict({2.0: _alpha((0.03, S), (-0.01, S))}) == "not supported"
    # both trade the same way (more overlap, more far false positives): α 4 is an end, not between them
    assert overview.alpha_verdict({2.0: trade_off[2.0], 8.0: _alpha((0.02, S), (0.01, S))}) == "not supported"
    assert overview.alpha_verdict({2.0: _alpha((-0.03, S), (-0.01, S))}) == "not supported"  # wrong way for α < 4
    # worse on both: α 4 is not dominated, but no trade-off is seen anywhere
    assert overview.alpha_verdict({2.0: _alpha((-0.03, S), (0.01, S))}) == "not supported"
    assert overview.alpha_verdict({2.0: _alpha((0.03, NS), (0.01, NS))}) == "not supported"  # α makes no difference
    assert overview.alpha_verdict({2.0: _alpha((0.03, "one training"), (0.01, "one training"), n=1)}) == "not tested"
    assert overview.alpha_verdict({}) == "not tested"
    # the side is taken from the study's own α
    assert overview.alpha_verdict({4.0: _alpha((-0.02, S), (-0.01, S))}, reference=2.0) == "supported"


def test_the_alpha_ablation_is_the_distance_variants_that_change_only_alpha():
    config = {"loss_options": {"distance": {"alpha": 4.0}},
              "variants": {"distance_alpha8": {"loss": "distance", "alpha": 8.0}, "distance_hard": {"loss": "distance", "mode": "hard"},
                           "distance_alpha2": {"loss": "distance", "alpha": 2}, "boundary": {"loss": "boundary"},
                           "diag": {"loss": "distance", "alpha": 2.0, "normalization": "diagonal"},
                           "same": {"loss": "distance", "alpha": 4}}}
    assert overview.alpha_variants(config) == {"distance_alpha2": 2.0, "distance_alpha8": 8.0}
    assert list(overview.alpha_variants(config)) == ["distance_alpha2", "distance_alpha8"]  # by α
    assert overview.alpha_variants(dict(config, variants={})) == {}


def test_evidence_names_interval_and_seeds_only_with_enough_trainings():
    text = overview.evidence_text("Dice", _result(-0.055))
    assert text == "Distance − Dice: -0.055 [-0.065, -0.045], 5 of 5 seeds agree, p = 0.01"
    one = overview.evidence_text("Dice", {"mean_diff": 0.01, "n_seeds": 1, "evidence": "one training"})
    assert one == "Distance − Dice: +0.010 (one training)" and "[" not in one


def test_the_page_links_only_files_that_exist_and_has_every_claim():
    page = overview.build_page(RESULTS)
    targets = set(re.findall(r"(?:href|src)='([^'#:]+)'", page))
    headline = overview.headline_study(RESULTS)
    # the committed converged/ study has 3 trainings per loss on their plateau (issue 25): it is the headline,
    # with its own training-length curve, and the one-pass study's verdicts in a column beside its own
    assert headline == overview.CONVERGED
    assert {"converged/figure2.png", "converged/training_length.png", "lodo/generalization.png", "seeds/report.html"} <= targets
    assert all((RESULTS / t).exists() for t in targets)
    assert "data:image" not in page  # figures are files beside the page, not embedded
    verdicts = re.findall(r"<td class='v [^']+'>([^<]+)</td>", page)
    assert len(verdicts) == 2 * (len(overview.CLAIMS) + 2) and set(verdicts) <= set(overview.VERDICTS)
    assert "at one pass (seeds/)" in page
    for heading in ("Table 1", "Figure 2", "The paper's claims", "Training length", "Peer losses", "Leave one dataset out"):
        assert f"<h2>{heading}" in page, heading


def test_the_committed_page_is_what_the_command_builds():
    committed = (RESULTS / overview.PAGE).read_text(encoding="utf-8")
    assert committed == overview.build_page(RESULTS), "results/index.html is stale: run python -m crack_utils.overview"


def test_a_missing_figure_is_named(tmp_path):
    import shutil

    for study in ("seeds", "convergence", "lodo"):
        shutil.copytree(RESULTS / study, tmp_path / study, ignore=shutil.ignore_patterns("*.npz", "*.ipynb"))
    (tmp_path / "README.md").write_text("x")
    overview.build_page(tmp_path)
    (tmp_path / "convergence" / "training_length.png").unlink()
    with pytest.raises(FileNotFoundError, match="convergence/training_length.png"):
        overview.build_page(tmp_path)


def test_the_lodo_table_gives_mean_and_sd_over_seeds_and_counts_the_fewest_trainings(tmp_path):
    (tmp_path / "lodo").mkdir()
    rows = [{"held_out": "cfd", "loss": loss, "seed": seed, "dice": dice}
            for loss, dices in {"bce": [0.5, 0.7, 0.6], "dice": [0.4, 0.4, 0.4]}.items() for seed, dice in enumerate(dices)]
    rows.append({"held_out": "gaps", "loss": "bce", "seed": 0, "dice": 0.3})
    pd.DataFrame(rows).to_csv(tmp_path / "lodo" / "generalization.csv", index=False)
    table = overview.lodo_table(tmp_path)
    assert list(table.columns) == ["held_out", "bce", "dice"]
    cfd = table.set_index("held_out").loc["cfd"]
    assert cfd["bce"] == "0.600 ± 0.100" and cfd["dice"] == "0.400 ± 0.000"
    assert table.set_index("held_out").loc["gaps", "bce"] == "0.300"  # one seed: no sd
    counts = overview.lodo_seed_counts(tmp_path)
    assert counts == {"cfd": 3, "gaps": 1} and overview.lodo_seed_counts(tmp_path / "none") == {}
    note = overview._lodo_trainings(counts)
    assert note.startswith("3 trainings per loss on 1 of 2 held-out datasets (cfd;") and "one training on the other 1" in note
    assert overview._lodo_trainings({"cfd": 3, "gaps": 4}) == "3 trainings per held-out dataset and loss, mean ± sd over seeds"
    assert "before the augmentation fix" in overview._lodo_trainings({"gaps": 1})
    assert overview._lodo_trainings({}) == "no leave-one-dataset-out study committed"
    pd.DataFrame([
        {"held_out": "cfd", "comparison": "distance - bce", "metric": "per-image dice", "mean_diff": -0.02,
         "ci_low": -0.05, "ci_high": 0.01, "seeds_agree": "2 of 3", "p_seeds": 0.41, "n_seeds": 3, "evidence": "not supported"},
        {"held_out": "gaps", "comparison": "distance - bce", "metric": "per-image dice", "mean_diff": 0.01,
         "ci_low": float("nan"), "ci_high": float("nan"), "seeds_agree": "1 of 1", "p_seeds": float("nan"), "n_seeds": 1,
         "evidence": "one training"},
        {"held_out": "cfd", "comparison": "distance - bce", "metric": "per-image betti0_error", "mean_diff": -0.4,
         "ci_low": -0.6, "ci_high": -0.2, "seeds_agree": "3 of 3", "p_seeds": 0.02, "n_seeds": 3, "evidence": "supported"},
        ]).to_csv(tmp_path / "lodo" / "generalization_paired.csv", index=False)
    paired = overview.lodo_table(tmp_path).set_index("held_out")["distance − bce, per-image Dice"]
    assert paired["cfd"] == "-0.020 [-0.050, +0.010], 2 of 3 seeds agree, p = 0.41"
    assert paired["gaps"] == "+0.010 (one training)"  # the Betti-0 rows are not in the Dice column
    row = overview.generalization_row(tmp_path)
    assert "per-image Dice on the held-out set: ahead on 1 of 2" in row["evidence"]
    assert "Betti-0 error: lower on 1 of 1, significantly on 1" in row["evidence"]
    assert row["verdict"] == "not tested"  # gaps rests on one training


def _converged_copy(tmp_path, passes=8, rises=(0.0, 0.0)):
    """``results/`` with ``seeds/`` also copied as ``converged/``, each of whose trainings is given a history of
    ``passes`` passes whose best validation Dice rises by ``rises`` in its last two passes."""
    import json
    import shutil

    for study in ("seeds", "convergence", "lodo"):
        shutil.copytree(RESULTS / study, tmp_path / study, ignore=shutil.ignore_patterns("*.npz", "*.ipynb"))
    shutil.copytree(tmp_path / "seeds", tmp_path / "converged")
    (tmp_path / "README.md").write_text("x")
    for summary_path in (tmp_path / "converged" / "03_train").glob("*/training_summary.json"):
        val = [0.5 + 0.01 * i for i in range(passes - 2)]
        val += [val[-1] + rises[0], val[-1] + rises[0] + rises[1]]
        pd.DataFrame({"epoch": range(1, passes + 1), "val_dice": val}).to_csv(summary_path.parent / "history.csv", index=False)
        summary = json.loads(summary_path.read_text())
        summary_path.write_text(json.dumps(dict(summary, epochs=passes, passes=float(passes))))
    return tmp_path


def test_the_headline_moves_to_the_converged_study_only_when_every_loss_has_three_converged_trainings(tmp_path):
    results = _converged_copy(tmp_path)
    assert overview.headline_study(RESULTS / "missing") == "seeds"
    trainings = overview.converged_trainings(results)
    assert set(trainings["loss"]) == {"bce", "dice", "distance"} and trainings["converged"].all()
    assert overview.headline_study(results) == "converged"
    page = overview.build_page(results)
    assert "converged/figure2.png" in page and "seeds/figure2.png" not in page
    assert "<th>at one pass (seeds/)</th>" in page
    verdicts = re.findall(r"<td class='v [^']+'>([^<]+)</td>", page)
    assert len(verdicts) == 2 * (len(overview.CLAIMS) + 2)  # the converged verdict and the one-pass one per claim
    assert "training_length.png" in page and "convergence/training_length.png" in page  # converged/ has no curve here
    assert "15 trainings are committed on their plateau" in page  # the curve's note counts them
    plateau = overview.plateau_rows(results)  # and a table lists each against the rule
    assert len(plateau) == 15 and set(plateau["on its plateau"]) == {"yes"}
    assert "<th>best validation Dice, rise over the last 2 passes</th>" in page and page.count("<td>+0.0000</td>") == 15
    import shutil
    shutil.copy(results / "convergence" / "training_length.png", results / "converged" / "training_length.png")
    assert "converged/training_length.png" in overview.build_page(results)
    # one Dice training short of the plateau leaves Dice with 4 converged seeds: still enough
    history = results / "converged" / "03_train" / "dice-seed0" / "history.csv"
    frame = pd.read_csv(history)
    frame.loc[frame.index[-1], "val_dice"] += 0.01
    frame.to_csv(history, index=False)
    assert not overview.converged_trainings(results).set_index(["loss", "seed"]).loc[("dice", 0), "converged"]
    assert overview.headline_study(results) == "converged"


def test_short_or_still_rising_trainings_keep_the_one_pass_headline(tmp_path):
    assert overview.headline_study(_converged_copy(tmp_path / "short", passes=5)) == "seeds"  # < 6 passes
    rising = _converged_copy(tmp_path / "rising", rises=(0.003, 0.003))  # +0.006 over the last two passes
    assert not overview.converged_trainings(rising)["converged"].any()
    assert set(overview.plateau_rows(rising)["on its plateau"]) == {"no"}
    short = overview.plateau_rows(tmp_path / "short")
    assert set(short["on its plateau"]) == {"plateau, too short"} and set(short["passes"]) == {"5"}
    assert overview.headline_study(rising) == "seeds"
    assert overview.headline_study(_converged_copy(tmp_path / "flat", rises=(0.002, 0.002))) == "converged"
