"""Run a whole study: ``python -m crack_utils.pipeline --config configs/default.yaml``.

Reads the study config and executes its notebooks with papermill (03 and 04 once per training: each loss
of Table 1 and each ablation/peer variant, per seed), writing under ``results/<config name>/`` (the layout:
:mod:`crack_utils.study.layout`)::

    01_data/  02_distance/  03_train/<run>-seed<k>/  04_evaluate/<run>-seed<k>/  05_report/
    table1.csv  table1.md  figure2.png  report.html  (published from 05_report)

* One process by default; ``--workers N`` runs the graph on a Dask ``LocalCluster`` of N workers,
  ``--scheduler ADDRESS`` on an existing Dask cluster (:mod:`crack_utils.study.executor`).
* A run whose notebook, parameters and upstream runs are unchanged and whose folder is complete is skipped
  (:mod:`crack_utils.study.freshness`); ``--force`` reruns all, ``--force train`` the named stages.
* Each run is executed in ``.tmp-<run>`` and renamed when it succeeds; a failing run is reported (notebook,
  cell, error; ``<run>.failed`` kept), runs that do not need it go on, and the study exits 1 listing every
  failure. Ctrl-C stops with one line and exit code 130; rerunning continues (trainings from their
  checkpoints in ``results/<name>/checkpoints/<run>-seed<k>/``).
* A progress line shows runs done / running / queued, an ETA and each running training's epoch, loss,
  validation Dice and seconds per epoch (:mod:`crack_utils.study.watch`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from crack_utils.study.config import ConfigError, check_paths, load_config, trainings, variant_seeds
from crack_utils.paths import repo_root
from crack_utils.study import layout
from crack_utils.study.executor import (Outcome, close_client, connect, local_cluster, run_in_process, run_on_dask,
                                        run_states)
from crack_utils.study.lock import study_lock
from crack_utils.study.layout import PUBLISHED  # noqa: F401  (re-exported: the published file list)
from crack_utils.study.notebook_run import (NOTEBOOKS, Run, StudyError, check_parameters,  # noqa: F401
                                            check_writable, execute, kernel_name, render_html)
from crack_utils.study.publishing import copy_published, publish  # noqa: F401
from crack_utils.study.watch import Watcher
from crack_utils.training import snapshot_name


def plan(config: dict, repo: Path | None = None, histories: bool = True) -> list[Run]:
    """The notebook runs of a study config, in an order that respects their ``deps`` (paths relative to the
    repository root): data -> distance maps; data -> train -> evaluate (per training and budget); all -> report.
    With ``training.plateau_max_epochs`` each training's EPOCHS come from its finished run under ``repo``
    (default: this repository) too (:func:`planned_epochs`), unless ``histories`` is False (trainings that
    are retrained from scratch: ``--force train``)."""
    base = layout.study_dir(config["name"])
    data_dir = layout.data_dir(base).as_posix()
    data, dist, train, ev = config["data"], config["distance"], config["training"], config["evaluation"]
    runs = [
        Run("data", layout.DATA, {
            "DATA_SOURCE": data["source"], "DATA_ROOT": data["root"], "DATASETS": data["datasets"],
            "SYNTHETIC_N_IMAGES": data["synthetic"]["n_images"], "SYNTHETIC_SIZE": data["synthetic"]["size"],
            "SYNTHETIC_SEED": data["synthetic"]["seed"],
            "SYNTHETIC_CRACK_FREE_FRACTION": data["synthetic"]["crack_free_fraction"],
            "MAX_PAIRS_PER_DATASET": data["max_pairs_per_dataset"], "TEST_DATASET": data["test_dataset"],
            "EXCLUSIONS_FILE": data["exclusions_file"], "SPLIT_SEED": data["split_seed"],
            "FRACTIONS": list(data["fractions"]), "SCREENING": dict(data["screening"]),
            "IMAGE_SIZE": config["image_size"]}),
        Run("distance", layout.DISTANCE, {
            "DATA_DIR": data_dir, "NORMALIZATION": dist["normalization"], "RADIUS": dist["radius"]},
            deps=(layout.DATA,)),
    ]
    for item in trainings(config):
        name, seed = item["name"], item["seed"]
        train_run = layout.train_run(name, seed)
        checkpoints = layout.checkpoint_dir(base, name, seed).as_posix()
        runs.append(Run("train", train_run, {
            "DATA_DIR": data_dir, "CHECKPOINT_DIR": checkpoints,
            "LOSS": item["loss"], "LOSS_OPTIONS": item["options"], "SEED": item["seed"],
            "ENCODER": config["model"]["encoder"], "ENCODER_WEIGHTS": config["model"]["encoder_weights"],
            "DROPOUT": config["model"]["dropout"], "DECODER_CHANNELS": list(config["model"]["decoder_channels"]),
            "CRACK_PRIOR": config["model"]["crack_prior"],
            "EPOCHS": train["epochs"], "BATCH_SIZE": train["batch_size"],
            "LR": train["lr"], "SAMPLES_PER_EPOCH": train["samples_per_epoch"],
            "NUM_WORKERS": train["num_workers"], "DEVICE": train["device"],
            "DETERMINISTIC": train["deterministic"], "AMP": train["amp"], "NORMALIZATION": item["normalization"],
            "RADIUS": item["radius"], "SNAPSHOT_EPOCHS": list(train["snapshot_epochs"] or []),
            "LR_SCHEDULE": train["lr_schedule"], "BATCHES": train["batches"]}, deps=(layout.DATA,)))
        if train["plateau_max_epochs"] is not None and histories:
            as_run = Run("train", f"{config['name']}/{train_run}", runs[-1].parameters, (f"{config['name']}/{layout.DATA}",))
            runs[-1].parameters["EPOCHS"] = planned_epochs((repo or repo_root()) / layout.RESULTS, as_run,
                                                           train["epochs"], train["plateau_max_epochs"], repo or repo_root())
        epochs = runs[-1].parameters["EPOCHS"]
        evaluate = {"DATA_DIR": data_dir, "TRAIN_DIR": layout.train_dir(base, name, seed).as_posix(),
                    "CHECKPOINT_DIR": checkpoints, "CHECKPOINT": ev["checkpoint"],
                    "THRESHOLD": ev["threshold"], "EXTRA_FOLDER": ev["extra_folder"], "DEVICE": train["device"],
                    "BATCH_SIZE": train["batch_size"]}
        runs.append(Run("evaluate", layout.evaluation_run(name, seed), evaluate, deps=(layout.DATA, train_run)))
        # training-length study (Table 1's losses): the best weights as of each budget, unless that is the
        # finished training's own evaluation (layout.budget_run)
        budgets = [k for k in train["snapshot_epochs"] or [] if name in config["losses"]
                   and layout.budget_run(name, k, epochs, ev["checkpoint"]) != name]
        for epoch in budgets:
            runs.append(Run("evaluate", layout.evaluation_run(name, seed, epoch),
                            dict(evaluate, CHECKPOINT=snapshot_name(epoch).removesuffix(".pt"), EXTRA_FOLDER=None),
                            deps=(layout.DATA, train_run)))
    runs.append(Run("report", layout.REPORT, {
        "RESULTS_DIR": base, "LOSSES": list(config["losses"]), "SEEDS": list(config["seeds"]),
        "DATA_DIR": data_dir, "N_EXAMPLES": config["figure"]["n_examples"],
        "BATCH_SIZE": train["batch_size"], "RUN_SPECS": run_specs(config), "VARIANTS": list(config["variants"]),
        "VARIANT_SEEDS": variant_seeds(config),
        "BUDGET_EPOCHS": list(train["snapshot_epochs"] or [])}, deps=tuple(r.name for r in runs)))
    return runs


def planned_epochs(results: Path, run: Run, epochs: int, max_epochs: int, repo: Path) -> int:
    """EPOCHS of training ``run`` (named, with its deps, relative to ``results``, as the pipeline runs it:
    ``<study>/03_train/<tag>``) of a study trained to the plateau (``training.plateau_max_epochs``): from the
    ``history.csv`` of its finished run in ``results``
    (:func:`crack_utils.training.epochs_to_plateau`) when that run's fingerprint is the current one but for
    EPOCHS and SNAPSHOT_EPOCHS (the same notebook, parameters and upstream runs: the same training, only
    longer); ``epochs`` for a new training or one that will be trained afresh."""
    import pandas as pd

    from crack_utils.study.executor import current_fingerprint
    from crack_utils.study.freshness import METADATA
    from crack_utils.training import epochs_to_plateau

    folder = results / run.name

    def without_lengths(fingerprint: dict) -> dict:
        parameters = {k: v for k, v in fingerprint.get("parameters", {}).items() if k not in ("EPOCHS", "SNAPSHOT_EPOCHS")}
        return dict(fingerprint, parameters=parameters)

    try:
        recorded = json.loads((folder / METADATA).read_text())["fingerprint"]
        history = pd.read_csv(folder / "history.csv", usecols=["val_dice"])
    except (FileNotFoundError, KeyError, ValueError):
        return int(epochs)
    if without_lengths(recorded) != without_lengths(current_fingerprint(run, results, repo)):
        return int(epochs)
    return epochs_to_plateau(history, epochs, max_epochs)


def run_specs(config: dict) -> dict:
    """What notebook 05 needs to describe each named training (the losses of Table 1 and the variants):
    ``{name: {"loss", "normalization", "radius", "options"}}``."""
    return {t["name"]: {"loss": t["loss"], "normalization": t["normalization"], "radius": t["radius"],
                        "options": t["options"]} for t in trainings(config)}


def run_study(config_path: str | Path, stages: list[str] | None = None, progress: bool = True, *,
              force=None, workers: int | None = None, scheduler: str | None = None, per_gpu: int = 1,
              watch_interval: float = 15.0) -> Path:
    """Execute the study config's run graph; returns ``results/<name>``. Raises :class:`StudyError` listing
    every failed run (after all runs that did not need them have finished).

    ``stages``: only these stages; ``force``: True or stage names to rerun even when up to date;
    ``workers``/``scheduler``/``per_gpu``: run on Dask (see :mod:`crack_utils.study.executor`)."""
    return run_studies([config_path], stages, progress, force=force, workers=workers, scheduler=scheduler,
                       per_gpu=per_gpu, watch_interval=watch_interval)[0]


def study_runs(config: dict, stages: list[str] | None = None, force=None, repo: Path | None = None) -> list[Run]:
    """:func:`plan` with run names (and deps) relative to ``results/``: ``<study>/<run>``, so that the runs
    of several studies form one graph. ``force`` (as for :func:`run_study`) that retrains the trainings
    plans them at ``training.epochs``, not from their histories."""
    prefix = config["name"] + "/"
    afresh = force is True or (bool(force) and "train" in force)
    return [Run(r.stage, prefix + r.name, r.parameters, tuple(prefix + d for d in r.deps))
            for r in plan(config, repo, histories=not afresh) if stages is None or r.stage in stages]


def _recorded_epochs(run_folder: Path) -> int:
    """Epochs a finished training run recorded (0 without one)."""
    from crack_utils.training_records import TrainingSummary

    return TrainingSummary.read(run_folder).epochs if TrainingSummary.exists(run_folder) else 0


def replanner(configs: list[dict], stages: list[str] | None = None):
    """``replan(run)`` for :func:`~crack_utils.study.executor.run_in_process`: ``run`` as :func:`study_runs`
    plans it now, from what is on disk (a training trained to its plateau is planned from its history);
    None for a study whose trainings are not planned from their histories."""
    extending = [c for c in configs if c["training"]["plateau_max_epochs"] is not None]

    def replan(run: Run) -> Run | None:
        for config in extending:
            if run.name.startswith(config["name"] + "/"):
                return next((r for r in study_runs(config, stages) if r.name == run.name), None)
        return None
    return replan if extending else None


def run_studies(config_paths, stages: list[str] | None = None, progress: bool = True, *, force=None,
                workers: int | None = None, scheduler: str | None = None, per_gpu: int = 1,
                watch_interval: float = 15.0) -> list[Path]:
    """Execute the run graphs of several study configs as one graph (on Dask, runs of different studies
    run concurrently); returns their ``results/<name>`` folders. See :func:`run_study`."""
    repo = repo_root()
    configs = []
    for path in config_paths:
        config = load_config(path)
        check_paths(config, stages, str(path))
        folder = repo / layout.study_dir(config["name"])
        check_writable(folder)
        configs.append(config)
    names = [c["name"] for c in configs]
    if len(set(names)) != len(names):
        raise StudyError(f"two configs have the same name: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    with ExitStack() as held:  # one pipeline per study (study/lock.py): a second one stops here
        for config in configs:
            held.enter_context(study_lock(repo / layout.study_dir(config["name"])))
        for config in configs:
            folder = repo / layout.study_dir(config["name"])
            remove_unfinished(folder)  # leftovers of a study that was killed; they would look like running runs
            (folder / layout.STUDY_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        kernel_name()
        # Batch runs: no per-batch progress bars inside the executed notebooks (the progress line shows the
        # trainings); the per-epoch summary lines remain in the reports.
        os.environ.setdefault("TQDM_DISABLE", "1")
        root = repo / layout.RESULTS
        runs = [run for config in configs for run in study_runs(config, stages, force)]
        on_dask = bool(workers or scheduler)
        what = f"study {names[0]!r}" if len(names) == 1 else f"{len(names)} studies ({', '.join(names)})"
        print(f"{what}: {len(runs)} notebook runs"
              + (f" on Dask ({scheduler or f'{workers} local workers'})" if on_dask else "")
              + "; runs that are up to date are skipped" + (" (except forced ones)" if force else ""), flush=True)
        t0 = time.perf_counter()
        finished: dict = {}
        client = None

        def after(outcome: Outcome) -> None:
            if outcome.name.endswith("/" + layout.DATA) and outcome.status == "done":
                print_data_summary(root / outcome.name)

        try:
            if on_dask:
                client = connect(scheduler) if scheduler else local_cluster(workers, per_gpu)
                if client.dashboard_link:
                    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            n_workers = len(client.scheduler_info()["workers"]) if client is not None else 1
            with Watcher(runs, root, repo, finished, workers=n_workers, interval=watch_interval):
                if client is not None:
                    outcomes = run_on_dask(client, runs, root, repo, force, finished, after=after)
                else:
                    outcomes = run_in_process(runs, root, repo, force, progress, finished, after=after,
                                              replan=replanner(configs, stages))
            wall = time.perf_counter() - t0
            for config in configs:
                results = repo / layout.study_dir(config["name"])
                mine = [o for o in outcomes if o.name.startswith(config["name"] + "/")]
                changed = any(o.status == "done" for o in mine) or not (results / layout.REPORT_PAGE).exists()
                report_ok = all(o.ok for o in mine if o.name.endswith("/" + layout.REPORT))
                if (stages is None or "report" in stages) and changed and report_ok \
                        and (results / layout.REPORT / "table1.md").exists():
                    publish(results / layout.REPORT, results, plan(config), wall, stages)
        except KeyboardInterrupt:
            if client is not None:  # stop the local workers (and their kernels) before removing what they wrote
                close_client(client)
                client = None
            for config in configs:
                remove_unfinished(repo / layout.study_dir(config["name"]))
            raise
        finally:
            if client is not None:
                close_client(client)
        failures = [o for o in outcomes if not o.ok]
        if failures:
            raise StudyError(failure_summary(failures))
        if on_dask:  # Dask runs the graph as planned: a training that has to go on to its plateau waits for the next run
            longer = [r.name for c in configs if c["training"]["plateau_max_epochs"] is not None
                      for r in study_runs(c, ["train"]) if r.parameters["EPOCHS"] > _recorded_epochs(root / r.name)]
            if longer:
                print(f"{len(longer)} trainings are not on their plateau yet ({', '.join(longer)}): run the same "
                      "command again to extend them from their checkpoints", flush=True)
        done = sum(o.status == "done" for o in outcomes)
        restored = sum(o.status == "restored" for o in outcomes)
        where = "; ".join(report_pointer(layout.study_dir(n), repo, stages is None or "report" in stages) for n in names)
        print(f"{what} finished in {wall:.0f} s ({done} runs executed, "
              + (f"{restored} executed again only to restore git-ignored outputs, " if restored else "")
              + f"{len(outcomes) - done - restored} up to date); {where}", flush=True)
        return [repo / layout.study_dir(n) for n in names]


def dry_run(config_path: str | Path, stages: list[str] | None = None, force=None) -> dict[str, str]:
    """What ``run_study`` would do to each run of a config, without running anything (``--dry-run``):
    ``{run name: state}`` (:func:`crack_utils.study.executor.run_states`). Prints one line per run that
    would execute and a count per state."""
    from collections import Counter

    config = load_config(config_path)
    repo = repo_root()
    states = run_states(study_runs(config, stages, force), repo / layout.RESULTS, repo, force)
    for name, state in states.items():
        if state != "up to date":
            print(f"  {name}: {state}")
    counts = Counter(states.values())
    print(f"study {config['name']!r}: {len(states)} notebook runs; "
          + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())), flush=True)
    return states


def report_pointer(study_dir: str, repo: Path, report_stage_ran: bool) -> str:
    """Where the study's results can be read: its report page, said to be older when this run left out
    the report stage, or just its folder when no report stage ever ran."""
    page = f"{study_dir}/{layout.REPORT_PAGE}"
    if not (repo / page).is_file():
        return f"results in {study_dir}/ (no report page: the report stage has not run)"
    return f"see {page}" if report_stage_ran else f"see {page} (from an earlier report stage)"


def failure_summary(failures: list[Outcome]) -> str:
    """Every failed and blocked run, failures first with their messages."""
    failed = [o for o in failures if o.status == "failed"]
    blocked = [o for o in failures if o.status == "blocked"]
    lines = [f"{len(failed)} run(s) failed" + (f", {len(blocked)} not run because of them" if blocked else "") + ":"]
    lines += [f"- {o.name}: {o.message}" for o in failed]
    lines += [f"- {o.name}: {o.message}" for o in blocked]
    return "\n".join(lines)


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
    parser.add_argument("--force", nargs="*", metavar="STAGE", choices=[s for s in NOTEBOOKS if s != "generalization"],
                        help="rerun runs that are up to date: all (no stage named) or those of the named stages")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run on a Dask LocalCluster of N worker processes (with GPUs: pinned one per GPU)")
    parser.add_argument("--per-gpu", type=int, default=1, metavar="K", help="with --workers on GPUs: K trainings per GPU")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask cluster: tcp://host:port or a scheduler file")
    parser.add_argument("--dry-run", action="store_true",
                        help="run nothing: list the runs that would execute (not run yet, out of date, after an "
                             "upstream run, forced) and count those up to date")
    parser.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bars")
    parser.add_argument("--progress-every", type=float, default=15.0, metavar="SECONDS",
                        help="print the live progress line (runs, ETA, running trainings) at most this often (default 15)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.per_gpu < 1:
        parser.error("--per-gpu must be at least 1")
    if not (math.isfinite(args.progress_every) and args.progress_every > 0):
        parser.error("--progress-every must be a positive number of seconds")
    force = None if args.force is None else (True if not args.force else set(args.force))
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background by a shell without job control (`cmd &` in a script, nohup ... &), which
        # ignores SIGINT for it: Ctrl-C / kill -INT / timeout -s INT must still stop the study cleanly
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.dry_run:
            dry_run(args.config, args.stages, force)
            return 0
        run_study(args.config, args.stages, progress=not args.no_progress, force=force, workers=args.workers,
                  scheduler=args.scheduler, per_gpu=args.per_gpu, watch_interval=args.progress_every)
    except (ConfigError, StudyError, ValueError) as err:
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
