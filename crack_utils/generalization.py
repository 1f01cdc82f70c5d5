"""Generalization across datasets: summarize leave-one-dataset-out studies side by side.

Each leave-one-dataset-out study (``configs/lodo_<dataset>.yaml``) trains on five of the six datasets and
tests on all of the sixth (``data.test_dataset``). This module reads those studies' evaluation outputs
(notebook 04's ``scores.json``, ``per_image.csv``, ``claims.csv``) and builds one table with a row per
held-out dataset, loss and seed, the per-image paired comparisons of the Distance-based Loss within each
held-out set, and runs notebook ``06_generalization`` to render them::

    python -m crack_utils.generalization --configs configs/lodo_*.yaml      # run unfinished studies, summarize
    python -m crack_utils.generalization --configs configs/lodo_*.yaml --summary-only

Outputs go to ``results/<--name, default lodo>/`` (``generalization.csv``, ``generalization_paired.csv``,
``generalization.png``, ``generalization_summary.md``, ``report.html``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from crack_utils.report import paired_comparisons, run_summary
from crack_utils.study.layout import (GENERALIZATION, REPORT_PAGE, STUDY_CONFIG, read_study_config, study_dir,
                                      train_run)
from crack_utils.study.publishing import run_commits, training_machines
from crack_utils.training_records import TrainingSummary

#: The per-image measures :func:`generalization_paired` compares: (column, the evaluation's file that holds it).
#: Dice for overlap (higher is better) and the Betti-0 error for continuity (lower is better: the paper's
#: fewer fragments).
PAIRED_METRICS = (("dice", "per_image.csv"), ("betti0_error", "claims.csv"))
PUBLISHED = ("generalization.csv", "generalization_paired.csv", "generalization.png", "generalization_summary.md")
#: The columns of :func:`generalization_summary` besides the held-out set: (column of the table, heading, digits).
SUMMARY_METRICS = (("dice", "pooled Dice", 3), ("fp_far_20px_share", "FP pixels > 20 px from a crack", 3),
                   ("betti0_error_mean", "mean Betti-0 error", 2), ("cldice_mean", "mean clDice", 3))


#: ``trained_at`` of a training whose folder holds no ``run_metadata.json`` (studies committed before training
#: metadata was: what trained those weights is not known).
NOT_RECORDED = "not recorded"


def held_out_name(config: dict) -> str:
    """The held-out dataset of a study, or ``"in-distribution"`` for an ordinary split."""
    return config["data"].get("test_dataset") or "in-distribution"


def trained_at(results_dir, loss: str, seed: int) -> str:
    """The commit(s) that trained the weights of ``loss`` at ``seed`` (short hashes, ``+dirty`` for a changed
    tree, joined by ``, ``: :func:`crack_utils.study.publishing.run_commits`), or :data:`NOT_RECORDED`."""
    return ", ".join(run_commits(Path(results_dir), [train_run(loss, seed)])) or NOT_RECORDED


def trained_precision(results_dir, loss: str, seed: int) -> str:
    """The arithmetic that training ran in (``training_summary.json``'s ``precision``: ``fp32`` or ``bf16
    autocast``, which ``training.amp: auto`` picks by CPU), or :data:`NOT_RECORDED`."""
    run = Path(results_dir) / train_run(loss, seed)
    return TrainingSummary.read(run).precision if TrainingSummary.exists(run) else NOT_RECORDED


def study_rows(results_dir) -> pd.DataFrame:
    """One row per (loss, seed) of a finished study: ``held_out``, ``study``, ``loss``, ``seed``,
    ``trained_at`` (:func:`trained_at`), ``trained_on`` (the machine:
    :func:`crack_utils.study.publishing.training_machines`), ``trained_in`` (:func:`trained_precision`; ``precision`` is the
    pooled metric), ``n_test``, the pooled metrics and the claim summaries of that model on its test set."""
    results_dir = Path(results_dir)
    config = read_study_config(results_dir)
    rows = [{"held_out": held_out_name(config), "study": config["name"], "loss": loss, "seed": seed,
             "trained_at": trained_at(results_dir, loss, seed),
             "trained_on": ", ".join(training_machines(results_dir, [train_run(loss, seed)])) or NOT_RECORDED,
             "trained_in": trained_precision(results_dir, loss, seed), **run_summary(results_dir, loss, [seed])}
            for loss in config["losses"] for seed in config["seeds"]]
    return pd.DataFrame(rows)


def generalization_table(results_dirs) -> pd.DataFrame:
    """:func:`study_rows` of several studies, one after the other."""
    return pd.concat([study_rows(d) for d in results_dirs], ignore_index=True)


def generalization_paired(results_dirs, reference: str = "distance") -> pd.DataFrame:
    """Per study: ``reference`` against each other loss on each of :data:`PAIRED_METRICS` per image over the
    held-out test set, paired by seed and image with trainings as the unit
    (:func:`crack_utils.report.paired_comparisons`: no interval or p-value with fewer than 3 seeds), with a
    ``held_out`` column; ``metric`` says which measure (``per-image dice``, ``per-image betti0_error``)."""
    frames = []
    for d in results_dirs:
        config = read_study_config(Path(d))
        for metric, file in PAIRED_METRICS:
            paired = paired_comparisons(Path(d), config["losses"], config["seeds"], reference=reference,
                                        metric=metric, file=file)
            frames.append(paired.assign(held_out=held_out_name(config)))
    out = pd.concat(frames, ignore_index=True)
    return out[["held_out", *[c for c in out.columns if c != "held_out"]]]


def _mean_sd(values: pd.Series, digits: int) -> str:
    """``0.512 ± 0.034`` over seeds; the mean alone for one seed."""
    return f"{values.mean():.{digits}f}" if len(values) < 2 else f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def generalization_summary(table: pd.DataFrame, paired: pd.DataFrame, reference: str = "distance") -> pd.DataFrame:
    """One row per held-out dataset: its test images and seeds (the fewest of any loss), the commits its
    weights were trained at, the machines and the arithmetic (``trained at``, ``trained on``, ``trained in``;
    :data:`NOT_RECORDED` for trainings without metadata; when the table has those columns), each of :data:`SUMMARY_METRICS` per loss as ``mean ± sd`` over seeds joined by
    `` / `` in the losses' order, and each paired comparison of ``reference`` (``paired``:
    :func:`generalization_paired`) as ``effect [interval], k of n seeds, p`` (``effect (one training)`` with
    fewer than 3 seeds).

    ``table``: :func:`generalization_table`'s rows (held-out × loss × seed)."""
    losses = list(dict.fromkeys(table["loss"]))
    rows = []
    for held_out, group in table.groupby("held_out", sort=True):
        row = {"held_out": held_out, "test images": int(group["n_test"].iloc[0]),
               "seeds": int(group.groupby("loss")["seed"].nunique().min())}
        if "trained_at" in group:
            commits = group["trained_at"].str.split(", ").explode()
            row["trained at"] = ", ".join(sorted(set(commits)))
        if "trained_on" in group:
            row["trained on"] = ", ".join(sorted(set(group["trained_on"].str.split(", ").explode())))
        if "trained_in" in group:
            row["trained in"] = ", ".join(sorted(set(group["trained_in"])))
        for column, heading, digits in SUMMARY_METRICS:
            row[f"{heading} ({' / '.join(losses)})"] = " / ".join(
                _mean_sd(group.loc[group["loss"] == loss, column], digits) for loss in losses)
        for r in paired[paired["held_out"] == held_out].itertuples(index=False):
            text = f"{r.mean_diff:+.3f}"
            if r.n_seeds >= 3:
                text += f" [{r.ci_low:+.3f}, {r.ci_high:+.3f}], {r.seeds_agree} seeds, p = {r.p_seeds:.2g}"
            else:
                text += f" ({r.evidence})"
            row[f"{r.comparison}, {r.metric}"] = text
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame) -> str:
    """:func:`generalization_summary` as a Markdown table (what results/README.md links)."""
    head = "| " + " | ".join(summary.columns) + " |\n|" + "---|" * len(summary.columns) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in summary.itertuples(index=False))


def generalization_figure(table: pd.DataFrame):
    """Heat maps (held-out dataset × loss) of pooled Dice, the far-false-positive share (> 20 px) and
    mean clDice, averaged over seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    panels = [("dice", "pooled Dice", "viridis"), ("fp_far_20px_share", "FP pixels > 20 px from a crack", "magma_r"),
              ("cldice_mean", "mean clDice", "viridis")]
    means = table.groupby(["held_out", "loss"], sort=False)[[p[0] for p in panels]].mean().reset_index()
    order = list(dict.fromkeys(table["loss"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.5 * means["held_out"].nunique() + 2.2))
    for ax, (column, title, cmap) in zip(axes, panels):
        grid = means.pivot(index="held_out", columns="loss", values=column)[order]
        sns.heatmap(grid, annot=True, fmt=".3f", cmap=cmap, vmin=0, vmax=1, cbar=False, ax=ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("loss")
        ax.set_ylabel("held-out test dataset" if ax is axes[0] else "")
    fig.tight_layout()
    return fig


def summary_ready(results_dir, config: dict) -> bool:
    """Whether ``results_dir`` holds what notebook 06 reads, made with ``config``: its ``study_config.json`` is
    ``config`` (the same losses, seeds and protocol) and every loss × seed has its evaluation (``scores.json``).

    :func:`run` does not hand such a study to the pipeline. Its training and data runs are git-ignored (only
    what notebook 06 reads is committed), so in a fresh clone the pipeline would find them "not run yet" and
    retrain hours; a study whose config changed (other seeds, another protocol) is not ready and is run."""
    from crack_utils.study.config import recorded_as
    from crack_utils.study.layout import evaluation_dir

    try:
        stored = read_study_config(results_dir)
    except FileNotFoundError:
        return False
    if not recorded_as(config, stored):
        return False
    return all((evaluation_dir(results_dir, loss, seed) / "scores.json").is_file()
               for loss in config["losses"] for seed in config["seeds"])


def run(config_paths, name: str = "lodo", summary_only: bool = False, progress: bool = True,
        workers: int | None = None, scheduler: str | None = None) -> Path:
    """Run the studies that are not :func:`summary_ready` (unless ``summary_only``) as one graph — the pipeline
    skips their runs that are up to date and retrains what a changed config asks for — concurrently on
    Dask with ``workers`` or ``scheduler`` (see :func:`crack_utils.pipeline.run_studies`) — then notebook 06
    over all of them; returns ``results/<name>``."""
    from crack_utils import pipeline
    from crack_utils.study.config import load_config
    from crack_utils.paths import repo_root
    from crack_utils.study.lock import study_lock

    repo = repo_root()
    configs = [load_config(p) for p in config_paths]
    if not configs:
        raise pipeline.StudyError("no study configs given (e.g. --configs configs/lodo_*.yaml)")
    unfinished = [path for path, config in zip(config_paths, configs)
                  if not summary_ready(repo / study_dir(config["name"]), config)]
    if unfinished and not summary_only:  # not run, run part way, or run with another config: the pipeline decides
        pipeline.run_studies(unfinished, progress=progress, workers=workers, scheduler=scheduler)
    studies = [study_dir(c["name"]) for c in configs]
    missing = [s for s in studies if not (repo / s / STUDY_CONFIG).is_file()]
    if missing:
        raise pipeline.StudyError(f"no results for {', '.join(missing)}; run without --summary-only first")
    results = repo / study_dir(name)
    pipeline.check_writable(results)
    with study_lock(results):  # one summary run at a time into results/<name>
        kernel = pipeline.kernel_name()
        t0 = time.perf_counter()
        step = pipeline.Run("generalization", GENERALIZATION, {"STUDIES": studies})
        pipeline.execute(step, results, repo, kernel, progress=progress)
        pipeline.copy_published(results / step.name, results, PUBLISHED)
        links = "".join(f'<li><a href="../{c["name"]}/{REPORT_PAGE}">{study_dir(c["name"])}</a></li>' for c in configs)
        (results / REPORT_PAGE).write_text(
            "<!doctype html><meta charset='utf-8'><title>Generalization</title><h1>Leave-one-dataset-out</h1>"
            f"<p>Summary notebook: <a href='{GENERALIZATION}/{GENERALIZATION}.html'>{GENERALIZATION}</a> "
            f"({time.perf_counter() - t0:.0f} s)</p><img src='generalization.png' style='max-width:100%'>"
            f"<h2>Studies</h2><ul>{links}</ul>", encoding="utf-8")
    print(f"summary of {len(studies)} studies in {study_dir(name)}/{REPORT_PAGE}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    from crack_utils.study.config import ConfigError
    from crack_utils.pipeline import StudyError

    parser = argparse.ArgumentParser(prog="python -m crack_utils.generalization", description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", required=True, help="study configs, e.g. configs/lodo_*.yaml")
    parser.add_argument("--name", default="lodo", help="results folder of the summary (default: lodo)")
    parser.add_argument("--summary-only", action="store_true", help="run no study, only notebook 06 over what is there")
    parser.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bars")
    parser.add_argument("--workers", type=int, metavar="N", help="run the studies concurrently on N local Dask workers")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run the studies on an existing Dask cluster")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        run(args.configs, args.name, args.summary_only, progress=not args.no_progress, workers=args.workers,
            scheduler=args.scheduler)
    except (ConfigError, StudyError, FileNotFoundError, OSError, ValueError) as err:
        print(f"\nThe summary stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted (Ctrl-C): finished runs are kept; rerun the same command to continue.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
