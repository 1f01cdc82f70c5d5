"""Study-level summaries built from the evaluation outputs (CSV/JSON) of notebook 04, for notebook 05."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

import json

import numpy as np

from crack_utils import paper
from crack_utils.distance import DEFAULT_NORMALIZATION
from crack_utils.losses import DEFAULT_DIST_MODE
from crack_utils.metrics import METRICS
from crack_utils.stats import PAIRED_COLUMNS, hierarchical_paired, seed_summary
from crack_utils.study.committed import read_table
from crack_utils.study.freshness import METADATA
from crack_utils.study.layout import evaluation_dir, run_tag, train_dir
from crack_utils.training_records import TrainingSummary


def _evaluation_dir(results: Path, loss: str, seed: int) -> Path:
    return evaluation_dir(results, loss, seed)


def seed_statistics(scores: pd.DataFrame) -> pd.DataFrame:
    """Per loss and metric (pooled and macro): mean, std and 95 % t-interval over seeds.

    ``scores``: one row per (loss, seed) with the pooled metrics and ``macro_<metric>`` columns.
    """
    rows = []
    for loss, group in scores.groupby("loss", sort=False):
        for column in [*METRICS, *(f"macro_{m}" for m in METRICS)]:
            rows.append({"loss": loss, "metric": column, **seed_summary(group[column])})
    return pd.DataFrame(rows)


#: Per-image ratios of two columns: the share of an image's false-positive pixels that lie > 20 px (> 5 px)
#: from any crack (undefined, NaN, for an image without false positives).
RATIOS = {"fp_far_20px_share": ("fp_far_20px", "fp_pixels"), "fp_far_5px_share": ("fp_far_5px", "fp_pixels")}


def per_image_scores(results, name: str, seeds, metric: str = "dice", file: str = "per_image.csv") -> pd.DataFrame:
    """Per-image ``metric`` of one named training for each of ``seeds`` (notebook 04's ``per_image.csv``, or
    ``claims.csv`` for a claim metric, or a ratio of :data:`RATIOS`): columns ``seed``, ``key``, ``value``."""
    columns = list(RATIOS.get(metric, (metric,)))
    frames = []
    for s in seeds:
        table = read_table(_evaluation_dir(results, name, s) / file, usecols=["key", *columns])
        value = table[columns[0]] / table[columns[1]].where(table[columns[1]] > 0) if metric in RATIOS else table[metric]
        frames.append(pd.DataFrame({"seed": s, "key": table["key"], "value": value}))
    return pd.concat(frames, ignore_index=True)


def paired_differences(results, a: str, b: str, seeds, metric: str = "dice", file: str = "per_image.csv") -> pd.DataFrame:
    """``a``'s per-image ``metric`` minus ``b``'s, paired by seed and image: columns ``seed``, ``key``,
    ``diff`` (the input of :func:`crack_utils.stats.hierarchical_paired`)."""
    scores_a, scores_b = per_image_scores(results, a, seeds, metric, file), per_image_scores(results, b, seeds, metric, file)
    joined = scores_a.merge(scores_b, on=["seed", "key"], suffixes=("_a", "_b"))
    unpaired = sorted(set(seeds) - set(joined["seed"]))
    if unpaired:
        raise ValueError(f"{a} and {b} share no test image at seed(s) {unpaired} in {results}")
    for seed in seeds:
        keys_a = set(scores_a.loc[scores_a["seed"] == seed, "key"])
        keys_b = set(scores_b.loc[scores_b["seed"] == seed, "key"])
        if keys_a != keys_b:
            raise ValueError(f"{a} and {b} scored different test images at seed {seed} in {results} "
                             f"({len(keys_a ^ keys_b)} not in both): evaluations of different test splits")
    return joined.assign(diff=joined["value_a"] - joined["value_b"])[["seed", "key", "diff"]]


def compare_trainings(results, a: str, b: str, seeds, metric: str = "dice", file: str = "per_image.csv") -> dict:
    """:func:`crack_utils.stats.hierarchical_paired` of ``a`` - ``b`` over ``seeds`` (trainings as the unit)."""
    return hierarchical_paired(paired_differences(results, a, b, seeds, metric, file))


def paired_comparisons(results, losses, seeds, reference: str = "distance", metric: str = "dice",
                       file: str = "per_image.csv") -> pd.DataFrame:
    """``reference`` against every other loss on per-image ``metric`` (a column of each evaluation's ``file``:
    ``per_image.csv`` or, for the claim metrics such as ``betti0_error``, ``claims.csv``), paired by seed and image, with
    trainings as the unit of evidence (:func:`crack_utils.stats.hierarchical_paired`: a two-level bootstrap
    interval, the per-seed differences, how many seeds agree in sign, a t-test over seeds, and a verdict;
    no interval or p-value with fewer than 3 seeds)."""
    columns = ["comparison", "metric", *PAIRED_COLUMNS]
    if reference not in losses:
        return pd.DataFrame(columns=columns)
    rows = [{"comparison": f"{reference} - {other}", "metric": f"per-image {metric}",
             **compare_trainings(results, reference, other, seeds, metric, file)}
            for other in losses if other != reference]
    return pd.DataFrame(rows, columns=columns)


def load_claims(results, losses, seeds, file: str = "claims.csv") -> pd.DataFrame:
    """All per-image claim metrics (notebook 04's ``claims.csv``, or ``extra_claims.csv`` for the extra
    folder) with ``loss`` and ``seed`` columns."""
    frames = [read_table(_evaluation_dir(results, loss, s) / file).assign(loss=loss, seed=s)
              for loss in losses for s in seeds]
    return pd.concat(frames, ignore_index=True)


def summarize_claims(claim_rows: pd.DataFrame) -> pd.DataFrame:
    """Per loss: pooled far-FP shares, mean Betti-0 error, mean clDice and mean tolerance F1."""
    rows = []
    for loss, g in claim_rows.groupby("loss", sort=False):
        fp = max(int(g["fp_pixels"].sum()), 1)
        rows.append({"loss": loss, "fp_pixels": int(g["fp_pixels"].sum()),
                     "fp_far_5px_share": g["fp_far_5px"].sum() / fp, "fp_far_20px_share": g["fp_far_20px"].sum() / fp,
                     "betti0_error_mean": g["betti0_error"].mean(), "cldice_mean": g["cldice"].mean(),
                     "tol_f1_mean": g["tol_f1"].mean(), "n_images": len(g)})
    return pd.DataFrame(rows)


CLAIM_SUMMARY = ("fp_far_5px_share", "fp_far_20px_share", "betti0_error_mean", "cldice_mean", "tol_f1_mean")


def run_summary(results, name: str, seeds) -> dict:
    """One training over ``seeds``: ``n_test``, the pooled metrics (mean over seeds) and the claim summaries
    (pooled over seeds, :func:`summarize_claims`)."""
    scores = pd.DataFrame([json.loads((_evaluation_dir(results, name, s) / "scores.json").read_text()) for s in seeds])
    claims = summarize_claims(load_claims(results, [name], seeds)).iloc[0]
    return {"n_test": int(scores["n_test"].iloc[0]), **{m: scores[m].mean() for m in METRICS},
            **{k: claims[k] for k in CLAIM_SUMMARY}}


def describe_run(spec: dict) -> str:
    """One line for a training's settings, e.g. ``distance: alpha=2.0, mode=soft; normalization=radius``."""
    options = ", ".join(f"{k}={v}" for k, v in sorted(spec.get("options", {}).items()))
    text = spec["loss"] + (f": {options}" if options else "")
    if spec["loss"] in ("distance", "boundary"):
        text += f"; normalization={spec['normalization']}" + (f" ({spec['radius']:g} px)" if spec["normalization"] == "radius" else "")
    return text


def ablation_table(results, run_specs: dict, names, seeds, reference: str = "dice") -> pd.DataFrame:
    """One row per named training (``names``: losses of Table 1 and variants), averaged over ``seeds``.

    Columns: ``run``, ``loss``, ``setting``, ``alpha``, ``mode``, ``normalization``, ``n_seeds``, the pooled
    metrics (mean over seeds), the claim summaries (pooled over seeds; see :func:`summarize_claims`) and a
    paired comparison against ``reference`` on per-image Dice, paired by seed and image with trainings as
    the unit (``diff_vs_<reference>``, ``ci_low``, ``ci_high``, ``p_seeds``, ``seeds_agree``, ``per_seed``,
    ``evidence``: see :func:`crack_utils.stats.hierarchical_paired`; no interval or p-value with fewer than
    3 seeds; empty for the reference itself or when it was not trained).
    """
    rows = []
    for name in names:
        spec = run_specs[name]
        options, loss = spec.get("options", {}), spec["loss"]
        summary = run_summary(results, name, seeds)
        summary.pop("n_test")  # the same test set for every row
        rows.append({"run": name, "loss": loss, "setting": describe_run(spec),
                     "alpha": {"dice": 1.0, "distance": options.get("alpha")}.get(loss, np.nan),
                     "mode": options.get("mode", DEFAULT_DIST_MODE) if loss == "distance" else "",
                     "normalization": spec["normalization"] if loss in ("distance", "boundary") else "",
                     "n_seeds": len(seeds), **summary})
    table = pd.DataFrame(rows)
    diff = f"diff_vs_{reference}"
    compared = {diff: "mean_diff", "ci_low": "ci_low", "ci_high": "ci_high", "p_seeds": "p_seeds",
                "seeds_agree": "seeds_agree", "per_seed": "per_seed", "evidence": "evidence"}
    for col in compared:
        table[col] = np.nan if col in (diff, "ci_low", "ci_high", "p_seeds") else ""
    if reference in names:
        for i, name in enumerate(names):
            if name != reference:
                result = compare_trainings(results, name, reference, seeds)
                for col, key in compared.items():
                    table.loc[i, col] = result[key]
    return table


def alpha_curve(table: pd.DataFrame, normalization: str = DEFAULT_NORMALIZATION) -> pd.DataFrame:
    """The rows of an :func:`ablation_table` that vary only α: soft Distance-based runs with
    ``normalization``, plus plain Dice as α = 1 when no α = 1 run exists; sorted by α."""
    rows = table[(table["loss"] == "distance") & (table["mode"] == DEFAULT_DIST_MODE) & (table["normalization"] == normalization)]
    if not (rows["alpha"] == 1.0).any():
        rows = pd.concat([table[table["loss"] == "dice"].head(1), rows])
    return rows.sort_values("alpha").reset_index(drop=True)


def false_positive_distance_histogram(results, losses, seeds, test_masks: np.ndarray, keys, max_px: float = 40.0,
                                      bin_px: float = 2.0) -> pd.DataFrame:
    """Histogram of every false-positive pixel's distance (px) to the nearest true crack pixel, per loss
    (pooled over ``seeds``), from notebook 04's ``predictions.npz``; ``test_masks`` (N, H, W) in the order
    of ``keys``.

    Columns: ``loss``, ``from_px``, ``to_px`` (bins of ``bin_px``; the last bin, ``to_px = inf``, holds
    distances of ``max_px`` or more and every false positive on a crack-free image), ``pixels``, ``share``
    (of that loss's false-positive pixels) and ``cumulative_share``. Counts, not pixels, are kept, so the
    table stays small for millions of false positives.
    """
    from crack_utils.claims import false_positive_distances
    from crack_utils.evaluation import load_predictions

    edges = np.append(np.arange(0.0, max_px, bin_px), [max_px, np.inf])
    rows = []
    for loss in losses:
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        for s in seeds:
            preds = load_predictions(_evaluation_dir(results, loss, s) / "predictions.npz", list(keys))
            for p, t in zip(preds, test_masks):
                d = false_positive_distances(p, t)
                counts += np.histogram(np.minimum(d, max_px), bins=edges)[0]
        total = max(int(counts.sum()), 1)
        for lo, hi, n, cum in zip(edges[:-1], edges[1:], counts, np.cumsum(counts)):
            rows.append({"loss": loss, "from_px": lo, "to_px": hi, "pixels": int(n), "share": n / total,
                         "cumulative_share": cum / total})
    return pd.DataFrame(rows)


def _decoder_text(channels) -> str:
    """``""`` for smp's default decoder (or an older run that did not record it), else ``", decoder 128-64-…"``."""
    from crack_utils.model import DEFAULT_DECODER_CHANNELS

    if channels is None or tuple(channels) == DEFAULT_DECODER_CHANNELS:
        return ""
    return ", decoder " + "-".join(str(c) for c in channels)


def protocol_text(results, names, seeds, image_size: int) -> str:
    """One sentence stating the training protocol of the trainings ``names`` × ``seeds`` of a study, from
    their ``run_metadata.json`` parameters and ``training_summary.json``: images, size, epochs, passes over
    the training split, batch, learning rate, seeds, device and precision, next to the paper's epochs.
    Settings that differ between trainings are given as ranges (e.g. ``1.3-2.6 passes``)."""
    rows = []
    for name in names:
        for seed in seeds:
            folder = train_dir(results, name, seed)
            summary = TrainingSummary.read(folder)
            p = json.loads((folder / METADATA).read_text())["parameters"]
            n_train = int(summary.train_images)
            per_epoch = n_train if p["SAMPLES_PER_EPOCH"] is None else min(int(p["SAMPLES_PER_EPOCH"]), n_train)
            epochs = int(summary.epochs)
            device, precision, schedule = summary.device, summary.precision, summary.lr_schedule
            rows.append({"n_train": n_train, "per_epoch": per_epoch, "epochs": epochs,
                         "passes": epochs * per_epoch / n_train, "batch": p["BATCH_SIZE"],
                         "lr": f"{p['LR']:g}" + ("" if schedule == "constant" else f" ({schedule})"),
                         "encoder": p["ENCODER"] + _decoder_text(p.get("DECODER_CHANNELS"))
                                    + (f", output prior {p['CRACK_PRIOR']:g}" if p.get("CRACK_PRIOR") else ""),
                         "device": f"{device}, {precision}"})
    frame = pd.DataFrame(rows)

    def span(column, fmt="{}"):
        low, high = frame[column].min(), frame[column].max()
        return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"

    images = "all" if (frame.per_epoch == frame.n_train).all() else span("per_epoch", "{:,}")
    seed_list = ", ".join(str(s) for s in seeds)
    return (f"Protocol: U-Net ({span('encoder')}), {span('n_train', '{:,}')} training images at {image_size} px; "
            f"{span('epochs')} epochs × {images} images = {span('passes', '{:.1f}')} passes over the training "
            f"split (the paper: {paper.EPOCHS} epochs); batch {span('batch')}, Adam lr {span('lr')}; "
            f"seed(s) {seed_list}; device {', '.join(sorted(frame.device.unique()))}.")


def extra_folder_summary(results, losses, seeds) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """The trainings scored on an extra folder (``evaluation.extra_folder``), as for the test split:
    ``(scores, seed_stats, claims_summary)`` — one row per (loss, seed) with the pooled and macro metrics
    and the folder; :func:`seed_statistics` of them; :func:`summarize_claims` pooled over seeds. ``None``
    when no training of ``losses`` × ``seeds`` was scored on an extra folder; a ValueError naming the
    missing runs when only some were."""
    paths = {(loss, s): _evaluation_dir(results, loss, s) / "extra_scores.json" for loss in losses for s in seeds}
    present = {k: p for k, p in paths.items() if p.is_file()}
    if not present:
        return None
    if len(present) < len(paths):
        missing = ", ".join(run_tag(loss, s) for (loss, s) in paths if (loss, s) not in present)
        raise ValueError(f"only some trainings were scored on the extra folder; missing: {missing}. "
                         "Rerun notebook 04 for them with the same EXTRA_FOLDER.")
    scores = pd.DataFrame([{"loss": loss, "seed": s, **json.loads(p.read_text())} for (loss, s), p in present.items()])
    claims = summarize_claims(load_claims(results, losses, seeds, file="extra_claims.csv"))
    return scores, seed_statistics(scores), claims
