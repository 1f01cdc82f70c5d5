"""The page a reader opens first: ``results/index.html``, built from the committed studies alone (no data,
no checkpoints) by ``python -m crack_utils.overview`` (``make overview``).

It shows, in order:

* the headline Table 1, ours beside the paper's, from :func:`headline_study` (the best-evidenced protocol:
  ``converged/`` once its trainings are on their plateau at >= 3 seeds per loss, else ``seeds/``);
* Figure 2 from real test images;
* a verdict table with one row per claim of the paper (:data:`CLAIMS`, then generalization and α,
  :func:`alpha_verdict`; the ablations are those of ``seeds/``). Each row gives the evidence with
  trainings as the unit (:func:`crack_utils.report.compare_trainings`: effect, two-level bootstrap interval,
  how many seeds agree) and one word:
  * ``supported``: every comparison is significant over seeds, in the paper's direction;
  * ``not supported``: the study has at least 3 seeds and some comparison is not;
  * ``not tested``: fewer than 3 trainings, or no study at the current protocol;

  with the converged headline, a column beside it gives each claim's verdict at one pass (``seeds/``): what
  convergence changed, per claim;
* the training-length curve, the peer losses, leave-one-dataset-out, and each study's protocol.

Figures are linked as files beside the page (relative links), never embedded, and every link is checked to
exist. The page is plain HTML with a little CSS.
"""
from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crack_utils import paper
from crack_utils.paths import repo_root
from crack_utils.report import compare_trainings
from crack_utils.stats import MIN_SEEDS_FOR_INFERENCE
from crack_utils.study import layout
from crack_utils.study.layout import read_study_config
from crack_utils.training import PLATEAU_GAIN, PLATEAU_PASSES
from crack_utils.training_length import plateau_table
from crack_utils.training_records import TrainingSummary

#: The headline until ``converged/`` qualifies, and the study of the ablations and peer losses: the most
#: trainings per loss at one protocol (5 seeds, one pass over the training split).
SHORT = "seeds"
#: The headline at convergence (issue 25, configs/converged.yaml): Table 1's losses trained to a plateau.
CONVERGED = "converged"
#: What a converged training must have done to count (issue 25): at least this many full passes, and its
#: history on the plateau (:func:`crack_utils.training.plateau_status`).
MIN_CONVERGED_PASSES = 6
#: Table 1's losses (:data:`crack_utils.paper.TABLE1_LOSSES`): the headline needs every one of them.
TABLE1_LOSSES = paper.TABLE1_LOSSES
#: The losses as the paper names them.
LOSS_NAMES = {"bce": "Binary cross-entropy", "dice": "Dice", "distance": "Distance-based (α = 4)"}
VERDICTS = ("supported", "not supported", "not tested")
PAGE = "index.html"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper tested on per-image scores: Distance-based against each of ``against``.
    ``better``: ``"higher"`` or ``"lower"`` values are the paper's direction."""
    key: str
    claim: str
    metric: str
    file: str
    better: str
    measure: str
    digits: int = 3


CLAIMS = (
    Claim("overlap", "Distance-based Loss beats BCE and Dice on overlap (Table 1: all five metrics)",
          "dice", "per_image.csv", "higher", "per-image Dice"),
    Claim("far_fp", "It penalizes false positives far from the cracks, so it predicts fewer of them",
          "fp_far_20px", "claims.csv", "lower", "false-positive pixels > 20 px from any crack, per image", 1),
    Claim("far_fp_share", "Its false positives lie near the cracks rather than far from them",
          "fp_far_20px_share", "claims.csv", "lower",
          "share of an image's false-positive pixels > 20 px from any crack (images with false positives)"),
    Claim("continuity", "Its cracks are more continuous (fewer fragments)",
          "betti0_error", "claims.csv", "lower", "|components predicted − true| (Betti-0 error), per image", 2),
)


def _fmt(x, digits=3) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:+.{digits}f}"


def _significant(result: dict, direction: str) -> bool:
    """A comparison supported over seeds, with its mean difference ``"higher"`` or ``"lower"`` than 0."""
    return result["evidence"] == "supported" and (result["mean_diff"] > 0) == (direction == "higher")


def claim_verdict(results: list[dict], better: str) -> str:
    """One word for a claim from its comparisons (:func:`crack_utils.stats.hierarchical_paired` results of
    Distance-based minus another loss): ``supported`` when every comparison is ``supported`` in the paper's
    direction (``better``: ``"higher"`` or ``"lower"``), ``not tested`` when any rests on fewer than 3
    trainings, else ``not supported``."""
    if not results or any(r["n_seeds"] < MIN_SEEDS_FOR_INFERENCE for r in results):
        return "not tested"
    return "supported" if all(_significant(r, better) for r in results) else "not supported"


def evidence_text(name: str, result: dict, digits: int = 3) -> str:
    """``Distance − Dice: −0.055 [−0.063, −0.046], 5 of 5 seeds, p = 0.0002`` (the interval and p only with
    enough trainings)."""
    return _result_text(f"Distance − {name}:", result, digits)


def _result_text(label: str, result: dict, digits: int = 3) -> str:
    """``<label> −0.055 [−0.063, −0.046], 5 of 5 seeds agree, p = 0.0002``, or ``<label> +0.010 (one training)``
    with fewer than 3 trainings."""
    text = f"{label} {_fmt(result['mean_diff'], digits)}"
    if result["n_seeds"] >= MIN_SEEDS_FOR_INFERENCE:
        return (text + f" [{_fmt(result['ci_low'], digits)}, {_fmt(result['ci_high'], digits)}], "
                f"{result['seeds_agree']} seeds agree, p = {result['p_seeds']:.2g}")
    return text + f" ({result['evidence']})"


def verdict_rows(results: Path, study: str = SHORT) -> pd.DataFrame:
    """The verdict table: one row per claim (:data:`CLAIMS` from ``study``, then generalization from the
    leave-one-dataset-out summary and α from :data:`SHORT`'s ablation), columns ``claim``, ``evidence``,
    ``study``, ``verdict``."""
    config = read_study_config(results / study)
    seeds = list(config["seeds"])
    others = [l for l in ("dice", "bce") if l in config["losses"]]
    rows = []
    for claim in CLAIMS:
        found = {o: compare_trainings(results / study, "distance", o, seeds, claim.metric, claim.file) for o in others}
        digits = claim.digits
        evidence = f"{claim.measure}, {claim.better} is better. " + "; ".join(
            evidence_text(LOSS_NAMES[o].split(" (")[0], r, digits) for o, r in found.items())
        rows.append({"claim": claim.claim, "evidence": evidence, "study": f"{study}/ ({len(seeds)} seeds)",
                     "verdict": claim_verdict(list(found.values()), claim.better)})
    rows.append(generalization_row(results))
    rows.append(alpha_row(results, SHORT))
    return pd.DataFrame(rows, columns=["claim", "evidence", "study", "verdict"])


ALPHA_CLAIM = "α = 4 balances overlap and far false positives (the paper's choice)"
#: The two measures α trades against each other (Eq. 1): per-image Dice (higher is better) and the share of an
#: image's false-positive pixels more than 20 px from any crack (lower is better), as (metric, file, better).
ALPHA_MEASURES = {"Dice": ("dice", "per_image.csv", "higher"),
                  "far-FP share": ("fp_far_20px_share", "claims.csv", "lower")}


def alpha_variants(config: dict) -> dict[str, float]:
    """The α ablation of a study: its variants that are the Distance-based Loss with only another α than the
    study's own (``{name: α}``, sorted by α), e.g. ``{"distance_alpha2": 2.0, "distance_alpha8": 8.0}``."""
    reference = float(config["loss_options"]["distance"]["alpha"])
    found = {name: float(v["alpha"]) for name, v in (config.get("variants") or {}).items()
             if v.get("loss") == "distance" and set(v) == {"loss", "alpha"} and float(v["alpha"]) != reference}
    return dict(sorted(found.items(), key=lambda item: item[1]))


def alpha_verdict(comparisons: dict[float, dict[str, dict]], reference: float = paper.ALPHA) -> str:
    """The α claim from comparisons of each other α against the ``reference`` α (``{α: {measure: result}}``,
    results of :func:`crack_utils.stats.hierarchical_paired` for *that α − reference* on each of
    :data:`ALPHA_MEASURES`: per-image Dice, higher is better, and the far-FP share, lower is better).

    α weighs the distance term against Dice (Eq. 1), so a smaller α should buy overlap with far false
    positives and a larger α the reverse. The reference balances the two when no other α is better on one
    measure without being worse on the other, and the others trade in the direction of their side:
    * ``not tested``: no other α, or any comparison rests on fewer than 3 trainings;
    * ``not supported``: another α *dominates* the reference (significantly better on one measure over seeds
      and not significantly worse on the other); or an α trades the wrong way for its side (a smaller α with
      fewer far false positives and less overlap, or a larger α the reverse: the reference is then not
      between them); or no α is better on either measure (no trade-off is seen, so none is balanced);
    * ``supported``: otherwise: at least one α trades one measure for the other in the direction of its
      side, and none dominates the reference."""
    results = [r for measures in comparisons.values() for r in measures.values()]
    if not results or any(r["n_seeds"] < MIN_SEEDS_FOR_INFERENCE for r in results):
        return "not tested"
    trade_offs = 0
    for alpha, measures in comparisons.items():
        gains = {m: _significant(r, ALPHA_MEASURES[m][2]) for m, r in measures.items()}
        losses = {m: _significant(r, "lower" if ALPHA_MEASURES[m][2] == "higher" else "higher") for m, r in measures.items()}
        expected_gain = "Dice" if alpha < reference else "far-FP share"
        for measure, gained in gains.items():
            others_lost = any(losses[o] for o in measures if o != measure)
            if gained and not others_lost:
                return "not supported"  # dominates the reference
            if gained and measure != expected_gain:
                return "not supported"  # trades the wrong way for its side of the reference
            trade_offs += gained and others_lost
    return "supported" if trade_offs else "not supported"


def alpha_row(results: Path, study: str = SHORT) -> dict:
    """The α claim from ``study``'s α ablation (:func:`alpha_variants`, at the variants' seeds), judged by
    :func:`alpha_verdict`; ``not tested`` when the study has none."""
    config = read_study_config(results / study)
    variants = alpha_variants(config)
    if not variants:
        return {"claim": ALPHA_CLAIM, "evidence": f"{study}/ has no α ablation.", "study": "–", "verdict": "not tested"}
    seeds = list(config.get("variant_seeds") or config["seeds"])
    reference = float(config["loss_options"]["distance"]["alpha"])
    comparisons = {name: {m: compare_trainings(results / study, name, "distance", seeds, metric, file)
                          for m, (metric, file, _) in ALPHA_MEASURES.items()} for name in variants}
    parts = []
    for name, measures in comparisons.items():
        texts = [_result_text(m, r) for m, r in measures.items()]
        parts.append(f"α {variants[name]:g} − α {reference:g}: " + ", ".join(texts))
    evidence = (f"Other α against α = {reference:g} (Dice: higher is better; far-FP share: lower is better). "
                + "; ".join(parts) + ".")
    return {"claim": ALPHA_CLAIM, "evidence": evidence,
            "study": f"{study}/ (α {', '.join(f'{a:g}' for a in variants.values())}, {len(seeds)} seeds)",
            "verdict": alpha_verdict({variants[name]: measures for name, measures in comparisons.items()}, reference)}


def _lodo_trainings(counts: dict[str, int]) -> str:
    """How many trainings stand behind each held-out dataset (``counts``: :func:`lodo_seed_counts`), e.g.
    ``3 trainings per held-out dataset and loss, mean ± sd over seeds``. Held-out sets with fewer than 3 are
    the one-seed studies trained before the augmentation fix (d201e37), which are being regenerated at seeds
    0-2, and are named so."""
    if not counts:
        return "no leave-one-dataset-out study committed"
    new = sorted(h for h, n in counts.items() if n >= MIN_SEEDS_FOR_INFERENCE)
    old = sorted(h for h, n in counts.items() if n < MIN_SEEDS_FOR_INFERENCE)
    fewest_new = min((counts[h] for h in new), default=0)
    if not old:
        return f"{fewest_new} trainings per held-out dataset and loss, mean ± sd over seeds"
    before = "trained before the augmentation fix (d201e37) and to be regenerated"
    if not new:
        return ("one training per held-out dataset and loss; these studies were trained before the augmentation "
                "fix (d201e37) and are to be regenerated")
    return (f"{fewest_new} trainings per loss on {len(new)} of {len(counts)} held-out datasets ({', '.join(new)}; "
            f"mean ± sd over seeds); one training on the other {len(old)}, {before}")


def lodo_paired(results: Path, metric: str = "per-image dice") -> pd.DataFrame:
    """The rows of ``results/lodo/generalization_paired.csv`` for ``metric`` (all rows of a summary written
    before it compared more than Dice, which has no ``metric`` column)."""
    paired = pd.read_csv(results / "lodo" / "generalization_paired.csv")
    return paired[paired["metric"] == metric] if "metric" in paired else paired


def generalization_row(results: Path) -> dict:
    """The generalization claim from the leave-one-dataset-out summary (``results/lodo/``): Distance-based
    against each other loss on each held-out dataset, judged like the other claims (:func:`claim_verdict`:
    supported only when it is ahead in per-image Dice, significantly over seeds, on every held-out dataset).
    The evidence also counts the held-out datasets where its Betti-0 error is lower (continuity)."""
    claim = "It generalizes better to datasets not seen in training"
    path = results / "lodo" / "generalization_paired.csv"
    if not path.is_file():
        return {"claim": claim, "evidence": "no leave-one-dataset-out study committed", "study": "–", "verdict": "not tested"}
    paired = lodo_paired(results)
    seeds = int(paired["n_seeds"].min())
    parts = []
    for comparison, group in paired.groupby("comparison", sort=False):
        ahead = int((group["mean_diff"] > 0).sum())
        name = LOSS_NAMES.get(comparison.split(" - ")[-1], comparison.split(" - ")[-1]).split(" (")[0]
        parts.append(f"Distance − {name}, per-image Dice on the held-out set: ahead on {ahead} of {len(group)} "
                     "held-out datasets")
    betti = lodo_paired(results, "per-image betti0_error")
    for comparison, group in betti.groupby("comparison", sort=False):
        lower = int((group["mean_diff"] < 0).sum())
        significant = sum(_significant(r, "lower") for r in group.to_dict("records"))
        name = LOSS_NAMES.get(comparison.split(" - ")[-1], comparison.split(" - ")[-1]).split(" (")[0]
        parts.append(f"Distance − {name}, Betti-0 error: lower on {lower} of {len(group)}, significantly on "
                     f"{significant}")
    note = f" — {_lodo_trainings(lodo_seed_counts(results))}"
    verdict = claim_verdict(paired.to_dict("records"), "higher")
    losses = paired["comparison"].str.split(" - ").explode().nunique()
    return {"claim": claim, "evidence": "; ".join(parts) + note + ".",
            "study": f"lodo_*/ ({paired['held_out'].nunique()} held-out × {losses} losses × {seeds} seed"
                     f"{'s' if seeds > 1 else ''})", "verdict": verdict}


def converged_trainings(results: Path, study: str = CONVERGED) -> pd.DataFrame:
    """Every finished training of Table 1's losses in ``study`` (its config's seeds): ``loss``, ``seed``,
    ``passes`` over the training split (``training_summary.json``), the plateau test of its ``history.csv``
    (``gain`` of the best validation Dice over the last two passes, ``plateau``) and ``converged``
    (``passes`` >= :data:`MIN_CONVERGED_PASSES` and on the plateau). Empty when the study is not there."""
    columns = ["loss", "seed", "passes", "gain", "plateau", "converged"]
    folder = results / study
    if not (folder / layout.STUDY_CONFIG).is_file():
        return pd.DataFrame(columns=columns)
    seeds = list(read_study_config(folder)["seeds"])
    rows = []
    for row in plateau_table(folder, TABLE1_LOSSES, seeds).itertuples(index=False):
        run = layout.train_dir(folder, row.loss, row.seed)
        if not TrainingSummary.exists(run):
            continue
        passes = TrainingSummary.read(run).passes
        rows.append({"loss": row.loss, "seed": int(row.seed), "passes": passes, "gain": row.gain,
                     "plateau": bool(row.plateau), "converged": bool(row.plateau) and passes >= MIN_CONVERGED_PASSES})
    return pd.DataFrame(rows, columns=columns)


def converged_ready(results: Path, study: str = CONVERGED) -> bool:
    """Whether ``study`` can carry the headline (issue 25's rule): its report is built (``table1.csv`` over
    >= 3 seeds) and each of Table 1's losses has >= 3 trainings of >= :data:`MIN_CONVERGED_PASSES` passes
    on their plateau."""
    table = results / study / "table1.csv"
    if not table.is_file() or int(pd.read_csv(table)["n_seeds"].min()) < MIN_SEEDS_FOR_INFERENCE:
        return False
    trainings = converged_trainings(results, study)
    done = trainings[trainings["converged"]].groupby("loss")["seed"].nunique()
    return all(int(done.get(loss, 0)) >= MIN_SEEDS_FOR_INFERENCE for loss in TABLE1_LOSSES)


def headline_study(results: Path) -> str:
    """The study of the headline Table 1, Figure 2 and the verdicts: :data:`CONVERGED` once
    :func:`converged_ready`, else :data:`SHORT`."""
    return CONVERGED if converged_ready(results) else SHORT


def headline_table(results: Path, study: str = SHORT) -> pd.DataFrame:
    """Table 1 of ``study`` (pooled test scores, mean ± sd over seeds) beside the paper's numbers."""
    table = pd.read_csv(results / study / "table1.csv")
    table["ours"] = [f"{m:.3f} ± {s:.3f}" if not np.isnan(s) else f"{m:.3f}"
                     for m, s in zip(table["ours_pooled"], table["ours_pooled_std"])]
    wide = table.pivot(index="loss", columns="metric", values="ours")
    paper = table.pivot(index="loss", columns="metric", values="paper")
    metrics = [m for m in ("precision", "recall", "f1", "iou", "dice") if m in wide.columns]
    out = pd.DataFrame({"loss": [LOSS_NAMES.get(l, l) for l in wide.index]})
    for m in metrics:
        out[f"{m} (ours)"] = wide[m].to_numpy()
        out[f"{m} (paper)"] = [f"{v:.3f}" for v in paper[m].to_numpy()]
    return out


def _table(frame: pd.DataFrame, classes: str = "") -> str:
    return frame.to_html(index=False, escape=True, border=0, classes=classes, na_rep="–")


def _verdict_table(rows: pd.DataFrame, earlier: pd.DataFrame | None = None, earlier_label: str = "") -> str:
    """The verdict table; with ``earlier`` (:func:`verdict_rows` of another study, same claims), a last
    column with that study's verdict per claim, headed ``earlier_label``."""
    def cell(verdict: str) -> str:
        return f"<td class='v {verdict.replace(' ', '-')}'>{verdict}</td>"

    extra = list(earlier["verdict"]) if earlier is not None else [None] * len(rows)
    body = "".join(
        f"<tr><td>{html.escape(r.claim)}</td><td>{html.escape(r.evidence)}</td><td>{html.escape(r.study)}</td>"
        f"{cell(r.verdict)}{cell(e) if e else ''}</tr>" for r, e in zip(rows.itertuples(index=False), extra))
    head = f"<th>{html.escape(earlier_label)}</th>" if earlier is not None else ""
    return ("<table class='verdicts'><thead><tr><th>claim of the paper</th><th>evidence (trainings as the unit)</th>"
            f"<th>study</th><th>verdict</th>{head}</tr></thead><tbody>{body}</tbody></table>")


def _peers(results: Path) -> str:
    path = results / SHORT / "ablation.csv"
    if not path.is_file():
        return "<p>No peer losses committed.</p>"
    table = pd.read_csv(path)
    keep = ["run", "n_seeds", "dice", "precision", "recall", "fp_far_20px_share", "betti0_error_mean",
            "diff_vs_dice", "ci_low", "ci_high", "seeds_agree", "evidence"]
    table = table[[c for c in keep if c in table.columns]].round(3)
    return _table(table.astype(object).where(table.notna(), ""))


def lodo_seed_counts(results: Path) -> dict[str, int]:
    """Per held-out dataset, the fewest trainings (seeds) of any loss in ``results/lodo/generalization.csv``
    (``{}`` when no leave-one-dataset-out study is committed)."""
    path = results / "lodo" / "generalization.csv"
    if not path.is_file():
        return {}
    seeds = pd.read_csv(path).groupby(["held_out", "loss"])["seed"].nunique()
    return {held_out: int(n) for held_out, n in seeds.groupby(level="held_out").min().items()}


def lodo_table(results: Path) -> pd.DataFrame:
    """Held-out test Dice per held-out dataset (rows) and loss (columns): pooled over the held-out set, mean
    ± sd over seeds (the mean alone with one seed); then, when ``generalization_paired.csv`` is there, one
    column per paired comparison (``distance - dice``, ...) of per-image Dice on that held-out set with
    trainings as the unit (:func:`_result_text`: interval, seeds agreeing and p only with >= 3 seeds)."""
    table = pd.read_csv(results / "lodo" / "generalization.csv")
    stats = table.groupby(["held_out", "loss"], sort=True)["dice"].agg(["mean", "std"]).reset_index()
    stats["dice"] = [f"{m:.3f}" if np.isnan(sd) else f"{m:.3f} ± {sd:.3f}" for m, sd in zip(stats["mean"], stats["std"])]
    wide = stats.pivot(index="held_out", columns="loss", values="dice").reset_index().rename_axis(columns=None)
    paired_path = results / "lodo" / "generalization_paired.csv"
    if not paired_path.is_file():
        return wide
    paired = lodo_paired(results)
    paired["text"] = [_result_text("", row).strip() for row in paired.to_dict("records")]
    columns = paired.pivot(index="held_out", columns="comparison", values="text")
    columns.columns = [f"{c.replace(' - ', ' − ')}, per-image Dice" for c in columns.columns]
    return wide.merge(columns.reset_index(), on="held_out", how="left")


def _lodo(results: Path) -> str:
    if not (results / "lodo" / "generalization.csv").is_file():
        return "<p>No leave-one-dataset-out study committed.</p>"
    return _table(lodo_table(results))


def committed_studies(results: Path) -> list[Path]:
    """The study folders under ``results`` that git tracks (a protocol committed): not the local studies of
    the tests, the demo or JupyterLab. Without git, every folder with a protocol."""
    import subprocess

    found = sorted(p for p in results.iterdir() if (p / "protocol.md").is_file())
    try:
        tracked = subprocess.run(["git", "-C", str(results), "ls-files", "--", "*/protocol.md"], check=True,
                                 capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return found
    names = {Path(t).parts[0] for t in tracked}
    return [p for p in found if p.name in names]


def _protocols(results: Path) -> str:
    items = []
    for folder in committed_studies(results):
        text = (folder / "protocol.md").read_text().strip()
        link = f"<a href='{folder.name}/{layout.REPORT_PAGE}'>{folder.name}/</a>" if (folder / layout.REPORT_PAGE).is_file() \
            else f"{folder.name}/"
        items.append(f"<li>{link}: {html.escape(text)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.7em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}.v{font-weight:600;white-space:nowrap}
.supported{background:#e3f4e1}.not-supported{background:#fbe3e1}.not-tested{background:#eee}
img{max-width:100%;border:1px solid #ddd}.note{color:#555;font-size:.92em}"""


def _training_length(results: Path, headline: str, link, image) -> str:
    """The training-length section: the converged study's curve (seeds per loss, snapshot budgets) when it is
    the headline, else the one-seed convergence study's."""
    if headline == CONVERGED and (results / CONVERGED / "training_length.png").is_file():
        seeds = len(read_study_config(results / CONVERGED)["seeds"])
        note = (f"{seeds} seeds per loss, each training scored at intermediate budgets with the paper's constant "
                f"learning rate ({link(CONVERGED + '/' + layout.REPORT_PAGE, CONVERGED + '/')}).")
        figure = f"{CONVERGED}/training_length.png"
    else:
        done = int(converged_trainings(results)["converged"].sum())
        note = ("One seed per loss, up to 10 passes with the paper's constant learning rate "
                f"({link('convergence/' + layout.REPORT_PAGE, 'convergence/')}). The study at convergence "
                f"(configs/converged.yaml) takes the headline once it has {MIN_SEEDS_FOR_INFERENCE} trainings per "
                f"loss on their plateau; {done} trainings are committed on their plateau.")
        figure = "convergence/training_length.png"
    return (f"<h2>Training length</h2><p class='note'>{note}</p>\n"
            + image(figure, "Test Dice against passes over the training split") + _plateau_section(results))


def plateau_rows(results: Path, study: str = CONVERGED) -> pd.DataFrame:
    """The plateau test of each finished training of ``study`` (:func:`converged_trainings`), for reading:
    loss, seed, passes, the rise of the best validation Dice over the last two passes and the verdict."""
    trainings = converged_trainings(results, study)
    return pd.DataFrame({
        "loss": [LOSS_NAMES.get(l, l) for l in trainings["loss"]], "seed": trainings["seed"].astype(int),
        "passes": [f"{p:g}" for p in trainings["passes"]],
        f"best validation Dice, rise over the last {PLATEAU_PASSES} passes": [f"{g:+.4f}" for g in trainings["gain"]],
        "on its plateau": ["yes" if c else ("plateau, too short" if p else "no")
                           for c, p in zip(trainings["converged"], trainings["plateau"])]})


def _plateau_section(results: Path) -> str:
    """Every finished training of the converged study against the plateau rule, or nothing before the first."""
    rows = plateau_rows(results)
    if rows.empty:
        return ""
    return (f"\n<p class='note'>The trainings of {CONVERGED}/ so far, against the plateau rule (the best validation "
            f"Dice rose by less than {PLATEAU_GAIN} over the last {PLATEAU_PASSES} passes, and at least "
            f"{MIN_CONVERGED_PASSES} passes; from each training's history.csv):</p>\n" + _table(rows))


def build_page(results: str | Path) -> str:
    """The HTML of ``results/index.html`` (see the module docstring); raises FileNotFoundError naming a
    linked file that does not exist."""
    results = Path(results)
    headline = headline_study(results)
    config = read_study_config(results / headline)
    protocol = (results / headline / "protocol.md").read_text().strip()
    def link(path: str, text: str | None = None) -> str:
        return f"<a href='{path}'>{html.escape(text or path)}</a>"

    def image(path: str, alt: str) -> str:
        return f"<a href='{path}'><img src='{path}' alt='{html.escape(alt)}'></a>"

    verdicts = verdict_rows(results, headline)
    earlier = verdict_rows(results, SHORT) if headline != SHORT else None
    n_seeds = int(pd.read_csv(results / headline / 'table1.csv')['n_seeds'].iloc[0])
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>Distance-based Loss for crack segmentation: "
        "the study</title>", f"<style>{CSS}</style><body>",
        "<h1>Does the Distance-based Loss segment concrete cracks better than BCE and Dice?</h1>",
        "<p>A reproduction of Özcan &amp; Schmiedecke (2024): a U-Net trained with binary cross-entropy, Dice and "
        f"their Distance-based Loss (α = {paper.ALPHA:g}) on six public crack datasets at {paper.IMAGE_SIZE} px, "
        "compared on precision, "
        "recall, F1, IoU and Dice (their Table 1) and side by side (their Figure 2). Every comparison below "
        "takes <b>trainings (seeds) as the unit of evidence</b>: the test images of one training say nothing "
        "about the next training.</p>",
        f"<h2>Table 1</h2><p class='note'>Study {link(headline + '/' + layout.REPORT_PAGE, headline + '/')}: "
        f"{html.escape(protocol)} Pooled over the {n_seeds} "
        "seeds' test predictions of each training, mean ± sd over seeds; the paper's values beside ours (their "
        f"protocol: {paper.EPOCHS} epochs on a GPU).</p>",
        _table(headline_table(results, headline)),
        "<h2>Figure 2</h2><p class='note'>Test images of the six datasets with their label and each loss's "
        f"prediction (seed {config['seeds'][0]}); errors coloured in the second figure "
        f"({link(headline + '/figure2_errors.png', 'figure2_errors.png')}).</p>",
        image(f"{headline}/figure2.png", "Figure 2: test images, labels and predictions of the three losses"),
        "<h2>The paper's claims</h2><p class='note'>Effect = Distance-based minus the other loss, mean over seeds "
        "of each seed's mean over the test images; [95 % interval] of a two-level bootstrap that resamples seeds and test images; "
        "how many seeds share the sign; p of a t-test over the per-seed differences. "
        "<b>supported</b>: significant over seeds in the paper's direction for every comparison; "
        "<b>not supported</b>: tested with ≥ 3 seeds and not so; <b>not tested</b>: fewer than 3 trainings or no "
        "study at the current protocol."
        + (f" The last column: the verdict at one pass over the training split ({link(SHORT + '/' + layout.REPORT_PAGE, SHORT + '/')}), "
           "i.e. what training to convergence changed." if earlier is not None else "") + "</p>",
        _verdict_table(verdicts, earlier, f"at one pass ({SHORT}/)"),
        _training_length(results, headline, link, image),
        f"<h2>Peer losses and ablations</h2><p class='note'>The variants of {SHORT}/ (peer losses such as clDice "
        "and Skeleton Recall, and ablations of the Distance-based Loss such as other α or the hard L_Dist) beside "
        "Table 1's losses, at their seeds (n_seeds); the difference to Dice with trainings as the unit.</p>",
        _peers(results),
        "<h2>Leave one dataset out</h2><p class='note'>Test Dice on a dataset held out of training, "
        f"{_lodo_trainings(lodo_seed_counts(results))} ({link('lodo/' + layout.REPORT_PAGE, 'lodo/')}).</p>",
        _lodo(results), image("lodo/generalization.png", "Held-out Dice per loss and held-out dataset"),
        "<h2>Each study's protocol</h2>", _protocols(results),
        "<p class='note'>Built by <code>python -m crack_utils.overview</code> from the committed studies; "
        "per-study commands and provenance: <a href='README.md'>results/README.md</a>.</p></body></html>",
    ]
    page = "\n".join(parts)
    import re

    for target in sorted(set(re.findall(r"(?:href|src)='([^'#:]+)'", page))):
        if not (results / target).exists():
            raise FileNotFoundError(f"{layout.RESULTS}/{PAGE} would link {target}, which does not exist under {results}")
    return page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.overview", description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=str(repo_root() / layout.RESULTS), help="the folder of committed studies")
    args = parser.parse_args(argv)
    page = build_page(args.results)
    out = Path(args.results) / PAGE
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
