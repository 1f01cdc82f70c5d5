"""Run a whole study: ``python -m crack_utils.pipeline --config configs/default.yaml``.

Reads the study config, executes the notebooks with papermill in order (03 and 04 once per training:
each loss of Table 1 and each ablation/peer variant, per seed; ``<run>`` is the loss or variant name), and writes under ``results/<config name>/``::

    01_data/  02_distance/  03_train/<run>-seed<k>/  04_evaluate/<run>-seed<k>/  05_report/
    table1.csv  table1.md  figure2.png  report.html  (published from 05_report)

Each run folder holds the executed notebook, its HTML rendering, ``run_metadata.json`` and the
notebook's own outputs. A run is executed in ``.tmp-<run>`` and renamed when it succeeds, so an earlier
successful result is replaced only by a complete new one. A failing cell stops the study with a message
naming the notebook and cell; the failed attempt is kept as ``<run>.failed`` for inspection. Ctrl-C stops
with one line and exit code 130, removing the unfinished ``.tmp-<run>``; rerunning continues.
Checkpoints live in ``results/<name>/checkpoints/<loss>-seed<k>/`` so a rerun resumes an interrupted
training with the same parameters.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crack_utils import run_metadata
from crack_utils.config import ConfigError, check_paths, load_config, trainings
from crack_utils.paths import repo_root
from crack_utils.training_length import budget_name

NOTEBOOKS = {
    "data": "notebooks/01_clean_data.ipynb",
    "distance": "notebooks/02_distance_maps.ipynb",
    "train": "notebooks/03_train_model.ipynb",
    "evaluate": "notebooks/04_evaluate_model.ipynb",
    "report": "notebooks/05_make_figures.ipynb",
    "generalization": "notebooks/06_generalization.ipynb",  # across studies: crack_utils.generalization
}
PUBLISHED = ("table1.csv", "table1.md", "figure2.png", "figure2_errors.png", "training_curves.png",
             "scores.csv", "aggregation_conventions.csv", "table1_stats.csv", "paired_comparisons.csv",
             "claims_summary.csv", "claims.png", "fp_distances.png", "fp_distances.csv", "ablation.csv", "alpha_curve.png",
             "training_length.csv", "training_length.png", "protocol.md", "extra_folder_stats.csv",
             "extra_folder_claims.csv")


class StudyError(RuntimeError):
    """A stage failed; the message says which notebook and cell, and where the partial output is."""


@dataclass
class Run:
    stage: str
    name: str  # folder under results/<config>/
    parameters: dict = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.stage]


def plan(config: dict) -> list[Run]:
    """The ordered notebook runs of a study config (paths relative to the repository root)."""
    base = f"results/{config['name']}"
    data, dist, train, ev = config["data"], config["distance"], config["training"], config["evaluation"]
    runs = [
        Run("data", "01_data", {
            "DATA_SOURCE": data["source"], "DATA_ROOT": data["root"], "DATASETS": data["datasets"],
            "SYNTHETIC_N_IMAGES": data["synthetic"]["n_images"], "SYNTHETIC_SIZE": data["synthetic"]["size"],
            "SYNTHETIC_SEED": data["synthetic"]["seed"],
            "SYNTHETIC_CRACK_FREE_FRACTION": data["synthetic"]["crack_free_fraction"],
            "MAX_PAIRS_PER_DATASET": data["max_pairs_per_dataset"], "TEST_DATASET": data["test_dataset"],
            "EXCLUSIONS_FILE": data["exclusions_file"], "SPLIT_SEED": data["split_seed"],
            "FRACTIONS": list(data["fractions"]), "SCREENING": dict(data["screening"]),
            "IMAGE_SIZE": config["image_size"]}),
        Run("distance", "02_distance", {
            "DATA_DIR": f"{base}/01_data", "NORMALIZATION": dist["normalization"], "RADIUS": dist["radius"]}),
    ]
    for item in trainings(config):
        tag = item["tag"]
        runs.append(Run("train", f"03_train/{tag}", {
            "DATA_DIR": f"{base}/01_data", "CHECKPOINT_DIR": f"{base}/checkpoints/{tag}",
            "LOSS": item["loss"], "LOSS_OPTIONS": item["options"], "SEED": item["seed"],
            "ENCODER": config["model"]["encoder"], "ENCODER_WEIGHTS": config["model"]["encoder_weights"],
            "DROPOUT": config["model"]["dropout"], "DECODER_CHANNELS": list(config["model"]["decoder_channels"]),
            "CRACK_PRIOR": config["model"]["crack_prior"],
            "EPOCHS": train["epochs"], "BATCH_SIZE": train["batch_size"],
            "LR": train["lr"], "SAMPLES_PER_EPOCH": train["samples_per_epoch"],
            "NUM_WORKERS": train["num_workers"], "DEVICE": train["device"],
            "DETERMINISTIC": train["deterministic"], "AMP": train["amp"], "NORMALIZATION": item["normalization"],
            "RADIUS": item["radius"], "SNAPSHOT_EPOCHS": list(train["snapshot_epochs"] or []),
            "LR_SCHEDULE": train["lr_schedule"]}))
        evaluate = {"DATA_DIR": f"{base}/01_data", "TRAIN_DIR": f"{base}/03_train/{tag}",
                    "CHECKPOINT_DIR": f"{base}/checkpoints/{tag}", "CHECKPOINT": ev["checkpoint"],
                    "THRESHOLD": ev["threshold"], "EXTRA_FOLDER": ev["extra_folder"], "DEVICE": train["device"],
                    "BATCH_SIZE": train["batch_size"]}
        runs.append(Run("evaluate", f"04_evaluate/{tag}", evaluate))
        # training-length study (Table 1's losses): the best weights as of each budget; the last epoch's is
        # the finished training's own evaluation when that uses the best checkpoint
        budgets = [k for k in train["snapshot_epochs"] or [] if item["name"] in config["losses"]
                   and not (k == train["epochs"] and ev["checkpoint"] == "best")]
        for epoch in budgets:
            runs.append(Run("evaluate", f"04_evaluate/{budget_name(item['name'], epoch)}-seed{item['seed']}",
                            dict(evaluate, CHECKPOINT=f"best-epoch{epoch}", EXTRA_FOLDER=None)))
    runs.append(Run("report", "05_report", {
        "RESULTS_DIR": base, "LOSSES": list(config["losses"]), "SEEDS": list(config["seeds"]),
        "DATA_DIR": f"{base}/01_data", "N_EXAMPLES": config["figure"]["n_examples"],
        "BATCH_SIZE": train["batch_size"], "RUN_SPECS": run_specs(config), "VARIANTS": list(config["variants"]),
        "VARIANT_SEEDS": sorted({t["seed"] for t in trainings(config) if t["name"] in config["variants"]}),
        "BUDGET_EPOCHS": list(train["snapshot_epochs"] or [])}))
    return runs


def run_specs(config: dict) -> dict:
    """What notebook 05 needs to describe each named training (the losses of Table 1 and the variants):
    ``{name: {"loss", "normalization", "radius", "options"}}``."""
    return {t["name"]: {"loss": t["loss"], "normalization": t["normalization"], "radius": t["radius"],
                        "options": t["options"]} for t in trainings(config)}


def _kernel_name() -> str:
    """A kernel that runs *this* interpreter: install a 'python3' spec into this environment's prefix
    and put it first on JUPYTER_PATH, so a user-level python3 kernel elsewhere is not picked up."""
    from ipykernel.kernelspec import install

    share = Path(sys.prefix) / "share" / "jupyter"
    spec = share / "kernels" / "python3" / "kernel.json"
    if not spec.is_file() or json.loads(spec.read_text())["argv"][0] != sys.executable:
        install(prefix=sys.prefix, kernel_name="python3", display_name="Python 3 (crack study)")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(share), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep)
    return "python3"


def render_html(notebook: Path, html: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    html.write_text(body, encoding="utf-8")


def _relative_papermill_paths(executed: Path, repo: Path, source: str, final: Path) -> None:
    """Papermill records absolute input/output paths; store them relative to the repository root."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata.setdefault("papermill", {})
    nb.metadata["papermill"]["input_path"] = source
    nb.metadata["papermill"]["output_path"] = (final / executed.name).relative_to(repo).as_posix()
    nbformat.write(nb, executed)


def check_parameters(run: Run, repo: Path) -> None:
    """Raise :class:`StudyError` if ``run`` passes a parameter its notebook does not declare (a typo
    would otherwise be ignored by papermill with a mere warning)."""
    import papermill

    declared = set(papermill.inspect_notebook(str(repo / run.notebook)))
    unknown = sorted((set(run.parameters) | {"OUT_DIR"}) - declared)
    if unknown:
        raise StudyError(f"{run.notebook} has no parameter(s) {', '.join(unknown)}; it declares: "
                         f"{', '.join(sorted(declared))}")


def check_writable(folder: Path) -> None:
    """Raise :class:`StudyError` naming ``folder`` if results cannot be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise StudyError(f"cannot write results to {folder}: {err.strerror or err}. Make the folder writable "
                         "or choose another config name.") from None


def execute(run: Run, results: Path, repo: Path, kernel: str, progress: bool = True) -> Path:
    """Execute one notebook run into ``results/<run.name>`` atomically; returns the final folder."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from crack_utils.quiet_kernel import QuietKernelManager

    check_parameters(run, repo)
    final = results / run.name
    tmp = final.with_name(f".tmp-{final.name}")
    failed = final.with_name(f"{final.name}.failed")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parameters = dict(run.parameters, OUT_DIR=tmp.relative_to(repo).as_posix())
    executed = tmp / Path(run.notebook).name
    started, t0 = datetime.now(), time.perf_counter()
    try:
        papermill.execute_notebook(str(repo / run.notebook), str(executed), parameters=parameters,
                                   kernel_name=kernel, cwd=str(repo), progress_bar=progress, log_output=False,
                                   kernel_manager_class=QuietKernelManager)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            shutil.rmtree(tmp, ignore_errors=True)
            raise KeyboardInterrupt from None
        shutil.rmtree(failed, ignore_errors=True)
        tmp.rename(failed)
        try:
            render_html(failed / executed.name, failed / executed.with_suffix(".html").name)
        except Exception:  # the error message below matters more than the rendering
            pass
        raise StudyError(
            f"{run.notebook} failed in cell {err.cell_index} (execution count {err.exec_count}) with "
            f"{err.ename}: {err.evalue}\nThe executed notebook with the traceback is "
            f"{(failed / executed.name).relative_to(repo)}. Results of earlier successful runs are untouched"
            + (f" (the previous {final.relative_to(repo)} is kept)." if final.exists() else ".")) from None
    wall = time.perf_counter() - t0
    _relative_papermill_paths(executed, repo, run.notebook, final)
    render_html(executed, executed.with_suffix(".html"))
    run_metadata.write(tmp / "run_metadata.json",
                       run_metadata.collect({"notebook": run.notebook, **parameters}, wall, started, repo))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    shutil.rmtree(failed, ignore_errors=True)
    return final


def _markdown_table_html(markdown: str) -> str:
    """The pipe table and notes of ``table1.md`` as simple HTML."""
    import html

    rows, notes = [], []
    for line in markdown.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
        elif line.strip() and not line.startswith(("|", "Protocol")):  # the protocol heads the page
            notes.append(html.escape(line))
    if not rows:
        return ""
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return (f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"
            + "".join(f"<p>{n}</p>" for n in notes))


def copy_published(source: Path, results: Path, names) -> None:
    """Copy the files ``names`` that exist in ``source`` to ``results``, each replaced atomically."""
    for name in names:
        src = Path(source) / name
        if src.exists():
            tmp = results / f".tmp-{name}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, results / name)


def publish(report_dir: Path, results: Path, runs: list[Run], wall_seconds: float, stages: list[str] | None = None) -> None:
    """Copy the headline files to ``results/<name>/`` and write an index page linking every report."""
    from html import escape as html_escape

    copy_published(report_dir, results, PUBLISHED)
    links = []
    for run in runs:
        html = results / run.name / Path(run.notebook).with_suffix(".html").name
        rel = html.relative_to(results).as_posix()
        links.append(f'<li><a href="{rel}">{run.name}</a> ({run.notebook})</li>')
    table = _markdown_table_html((results / "table1.md").read_text()) if (results / "table1.md").exists() else ""
    protocol = (results / "protocol.md").read_text().strip() if (results / "protocol.md").exists() else ""
    beyond = "".join(f"<h3>{title}</h3><img src='{name}' style='max-width:100%'>"
                     for name, title in [("claims.png", "The paper's claims, per loss"),
                                         ("fp_distances.png", "Where the false positives are"),
                                         ("alpha_curve.png", "The α curve"),
                                         ("training_length.png", "Training length")] if (results / name).exists())
    if (results / "ablation.csv").exists():
        import pandas as pd

        ablation = pd.read_csv(results / "ablation.csv")
        columns = ["run", "setting", "precision", "recall", "dice", "fp_far_20px_share", "cldice_mean", "diff_vs_dice"]
        beyond += "<h3>Ablations and peer losses</h3>" + ablation[columns].round(4).to_html(index=False, na_rep="")
    page = ("<!doctype html><meta charset='utf-8'><title>Crack-loss study: {name}</title>"
            "<h1>Crack-loss study: {name}</h1><p><b>{protocol}</b></p><p>Wall time of the last pipeline run ({stages}): {wall:.0f} s; "
            "each notebook's own time is in its run_metadata.json.</p>"
            "<h2>Table 1</h2>{table}<h2>Figure 2</h2><img src='figure2.png' style='max-width:100%'>"
            "{beyond_heading}{beyond}<h2>Executed notebooks</h2><ul>{links}</ul>").format(
        name=results.name, protocol=html_escape(protocol), wall=wall_seconds, stages="stages " + ", ".join(stages) if stages else "all stages", table=table,
        links="".join(links), beyond=beyond, beyond_heading="<h2>Beyond the paper</h2>" if beyond else "")
    (results / "report.html").write_text(page, encoding="utf-8")


def run_study(config_path: str | Path, stages: list[str] | None = None, progress: bool = True) -> Path:
    """Execute every run of the study config; returns ``results/<name>``."""
    repo = repo_root()
    config = load_config(config_path)
    check_paths(config, stages, str(config_path))
    results = repo / "results" / config["name"]
    check_writable(results)
    (results / "study_config.json").write_text(json.dumps(config, indent=2) + "\n")
    kernel = _kernel_name()
    # Batch runs: no per-batch progress bars inside the executed notebooks (the pipeline prints progress);
    # the per-epoch summary lines remain in the reports.
    os.environ.setdefault("TQDM_DISABLE", "1")
    runs = [r for r in plan(config) if stages is None or r.stage in stages]
    print(f"study {config['name']!r}: {len(runs)} notebook runs; every stage is rerun (training continues from "
          "its checkpoint when the parameters and data are unchanged)", flush=True)
    t0 = time.perf_counter()
    try:
        for i, run in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {run.notebook} -> results/{config['name']}/{run.name}", flush=True)
            t_run = time.perf_counter()
            final = execute(run, results, repo, kernel, progress=progress)
            print(f"      done in {time.perf_counter() - t_run:.0f} s", flush=True)
            if run.stage == "data":
                print_data_summary(final)
        wall = time.perf_counter() - t0
        if stages is None or "report" in stages:
            publish(results / "05_report", results, plan(config), wall, stages)
    except KeyboardInterrupt:
        remove_unfinished(results)
        raise
    print(f"study {config['name']!r} finished in {wall:.0f} s; see results/{config['name']}/report.html", flush=True)
    return results


def print_data_summary(run_dir: Path) -> None:
    """Print the data stage's summary (pairs found, used, excluded by reason; folders not read)."""
    from crack_utils.data_report import read_summary

    text = read_summary(run_dir)
    if text:
        print("\n".join("      " + line for line in text.splitlines()), flush=True)


def remove_unfinished(results: Path) -> None:
    """Remove the ``.tmp-*`` runs and files of an interrupted study (finished runs are untouched)."""
    for leftover in [*results.glob(".tmp-*"), *results.glob("*/.tmp-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="study config, e.g. configs/default.yaml")
    parser.add_argument("--stages", nargs="+", choices=[s for s in NOTEBOOKS if s != "generalization"],
                        help="run only these stages")
    parser.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bars")
    args = parser.parse_args(argv)
    try:
        run_study(args.config, args.stages, progress=not args.no_progress)
    except (ConfigError, StudyError) as err:
        print(f"\nThe study stopped: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. a results folder that became unwritable mid-run
        print(f"\nThe study stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted (Ctrl-C): the unfinished run was removed, finished runs are kept; rerun the same "
              "command to continue (training resumes from its last checkpoint).", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
