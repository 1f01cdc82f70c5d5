"""Executing a study's run graph: in this process, one run after another (the default), or concurrently
on a Dask cluster (``--workers N`` on this machine, ``--scheduler ADDRESS`` for an existing cluster).

Dask schedules, papermill executes: every run is still :func:`crack_utils.study.notebook_run.execute`
into its atomic run folder. The graph is data -> distance maps -> train -> evaluate (per training) ->
report (each :class:`~crack_utils.study.notebook_run.Run` names its ``deps``); a run starts as soon as
its inputs exist. Each task:

* is skipped with a one-line note when up to date (:mod:`crack_utils.study.freshness`), unless forced;
* returns a failed :class:`Outcome` (notebook, cell, error; ``<run>.failed/`` kept) instead of raising,
  so runs that do not depend on it go on and its dependents are reported as not run;
* resumes a training from its checkpoint when it is retried — Dask reschedules the task of a worker that
  died (up to ``distributed.scheduler.allowed-failures`` times), and the retried notebook continues from
  ``last.pt``: no finished run is lost.

Workers: one thread each (a run is a kernel process that uses the cores itself). On a machine with GPUs
each worker is pinned to one GPU through ``CUDA_VISIBLE_DEVICES`` (Dask resources would only be labels),
``per_gpu`` workers per GPU; on CPU the cores are shared out through ``OMP_NUM_THREADS``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from crack_utils.study import freshness, layout
from crack_utils.study.notebook_run import Run, StudyError, execute, kernel_name


#: The thread-pool sizes of torch (OpenMP) and the BLAS libraries; kernels and workers inherit them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_settings(threads: int) -> dict[str, str]:
    """Every one of :data:`THREAD_VARIABLES` set to ``threads`` (at least 1), to update an environment with."""
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, int(threads))))


@dataclass
class Outcome:
    """How one run ended: ``status`` is ``"done"``, ``"skipped"`` (up to date), ``"restored"`` (executed
    again only for its git-ignored outputs, with the committed result: kept, see
    :func:`crack_utils.study.freshness.same_result`), ``"failed"`` or ``"blocked"`` (an upstream run
    failed); ``message`` says why for the last two."""
    name: str
    status: str
    seconds: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped", "restored")


def current_fingerprint(run: Run, results: Path, repo: Path) -> dict:
    """The fingerprint ``run`` would have if executed now (upstream run ids as they are on disk)."""
    upstream = {dep: freshness.run_id(results / dep) for dep in run.deps}
    inputs = {}
    if run.parameters.get("EXCLUSIONS_FILE"):
        from crack_utils.paths import from_repo

        inputs["EXCLUSIONS_FILE"] = freshness.file_digest(from_repo(run.parameters["EXCLUSIONS_FILE"]))
    return freshness.fingerprint(freshness.notebook_digest(repo / run.notebook), run.parameters, upstream, inputs)


def run_one(run: Run, results, repo, force: bool, progress: bool, *upstream: Outcome,
            outputs_needed: bool = True) -> Outcome:
    """Execute ``run`` unless it is up to date (and not ``force``d) or an upstream run failed. Never
    raises for a failing notebook (see the module docstring); Ctrl-C still propagates.

    ``outputs_needed``: whether a run that reads this run's git-ignored outputs (:func:`required_outputs`)
    has to execute (:func:`needed_outputs`); if not, a finished run with the current fingerprint is up to
    date without them. A run executed only to restore them keeps its committed folder and ``run_id`` when
    the result is the same (status ``"restored"``)."""
    results, repo = Path(results), Path(repo)
    failed = [o.name for o in upstream if not o.ok]
    if failed:
        return Outcome(run.name, "blocked", message=f"not run: it needs {', '.join(failed)}, which did not finish")
    current = current_fingerprint(run, results, repo)
    folder, notebook = results / run.name, Path(run.notebook).name
    required = required_outputs(run, results, repo) if outputs_needed else []
    if not force and freshness.is_up_to_date(folder, notebook, current, required):
        return Outcome(run.name, "skipped")
    restoring = not force and freshness.is_complete_with(folder, notebook, current)
    if force and run.stage == "train":  # a forced training is retrained, not resumed from its checkpoint
        import shutil

        shutil.rmtree(repo / run.parameters["CHECKPOINT_DIR"], ignore_errors=True)
    _share_cores_on_a_cluster_worker()
    t0 = time.perf_counter()
    try:
        kept = execute(run, results, repo, kernel_name(), progress=progress, fingerprint=current, restore=restoring)
    except StudyError as err:
        return Outcome(run.name, "failed", time.perf_counter() - t0, str(err))
    except Exception as err:  # never let one run's surprise stop the others
        return Outcome(run.name, "failed", time.perf_counter() - t0, f"{type(err).__name__}: {err}")
    return Outcome(run.name, "restored" if kept else "done", time.perf_counter() - t0)


def required_outputs(run: Run, results: Path, repo: Path) -> list[Path]:
    """Git-ignored files (absent in a fresh clone) that a finished run leaves for the runs that read them:
    the prepared arrays of the data stage, a training's best weights."""
    if run.stage == "data":
        return [Path(results) / run.name / layout.PREPARED_ARRAYS]
    if run.stage == "train":
        return [Path(repo) / run.parameters["CHECKPOINT_DIR"] / "best.pt"]
    return []


#: Which stages read the git-ignored outputs of which (the report reads the prepared arrays only when its
#: compact test split is missing).
READERS = {"data": ("distance", "train", "evaluate", "report"), "train": ("evaluate",)}


def _reads_outputs(reader: Run, upstream: Run, results: Path) -> bool:
    if reader.stage not in READERS.get(upstream.stage, ()):
        return False
    return reader.stage != "report" or not (Path(results) / reader.name / layout.COMPACT_TEST_SPLIT).is_file()


def needed_outputs(runs: list[Run], results: Path, repo: Path, force=None) -> set[str]:
    """Names of the runs whose git-ignored outputs (:func:`required_outputs`) are needed: a run that reads
    them will execute — forced, not finished with its current fingerprint, or itself restoring its outputs
    for a reader. Decided from the disk before anything runs (in reverse plan order: readers come later)."""
    results, repo = Path(results), Path(repo)
    needed: set[str] = set()
    executes: dict[str, bool] = {}
    for run in reversed(runs):
        readers = [r for r in runs if run.name in r.deps and _reads_outputs(r, run, results)]
        if any(executes.get(r.name, False) for r in readers):
            needed.add(run.name)
        try:
            complete = freshness.is_complete_with(results / run.name, Path(run.notebook).name,
                                                  current_fingerprint(run, results, repo))
        except (OSError, KeyError):  # cannot tell (no notebook, a run made by hand): as if it executes
            complete = False
        executes[run.name] = forced(run, force) or not complete or (
            run.name in needed and not all(p.exists() for p in required_outputs(run, results, repo)))
    return needed


def run_states(runs: list[Run], results: Path, repo: Path, force=None) -> dict[str, str]:
    """What running ``runs`` now would do to each, decided from the disk without executing anything:
    ``"up to date"`` (a finished run with the current fingerprint), ``"not run yet"`` (no finished run in
    its folder), ``"out of date"`` (a finished run whose fingerprint differs: its notebook, parameters or
    inputs changed), ``"after upstream"`` (finished and current, but an upstream run will execute and give it
    a new input) or ``"forced"``. Git-ignored outputs aside (a fresh clone restores them without retraining,
    :func:`run_one`). In plan order, so upstream runs come first."""
    results, repo = Path(results), Path(repo)
    states: dict[str, str] = {}
    for run in runs:
        folder = results / run.name
        if forced(run, force):
            states[run.name] = "forced"
        elif freshness.read_metadata(folder) is None:
            states[run.name] = "not run yet"
        elif any(states.get(dep, "up to date") != "up to date" for dep in run.deps):
            states[run.name] = "after upstream"
        else:
            try:
                current = freshness.is_complete_with(folder, Path(run.notebook).name,
                                                     current_fingerprint(run, results, repo))
            except (OSError, KeyError):
                current = False
            states[run.name] = "up to date" if current else "out of date"
    return states


def _share_cores_on_a_cluster_worker() -> None:
    """On a Dask worker of a cluster we did not start (``--scheduler``), Dask's nanny set OMP/MKL/OpenBLAS to
    1 thread; give the kernels this worker starts the cores the worker may use (:class:`PinWorker` does
    this for local clusters)."""
    if os.environ.get("CRACK_PINNED") or os.environ.get("OMP_NUM_THREADS") != "1":
        return
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.update(thread_settings(cores))


def forced(run: Run, force) -> bool:
    """``force``: True (every run), a collection of stage names, or falsy."""
    return force is True or (bool(force) and run.stage in force)


def _note(outcome: Outcome, results: Path, index: int, total: int, started: bool = False) -> str:
    """The line that reports how a run ended (``started``: its start line was printed just before)."""
    where = f"{results.name}/{outcome.name}"
    if started and outcome.status in ("done", "failed"):
        return f"      done in {outcome.seconds:.0f} s" if outcome.status == "done" else \
            f"      FAILED — {outcome.message.splitlines()[0]}"
    if outcome.status == "skipped":
        return f"[{index}/{total}] {where}: up to date, skipped"
    if outcome.status == "restored":
        return (f"{'      ' if started else f'[{index}/{total}] {where}: '}restored its git-ignored outputs in "
                f"{outcome.seconds:.0f} s (the same result as committed: the run is kept)")
    if outcome.status == "done":
        return f"[{index}/{total}] {where}: done in {outcome.seconds:.0f} s"
    return f"[{index}/{total}] {where}: {outcome.status.upper()} — {outcome.message.splitlines()[0]}"


def run_in_process(runs: list[Run], results: Path, repo: Path, force=None, progress: bool = True,
                   finished: dict | None = None, report=print, after=None, replan=None) -> list[Outcome]:
    """Execute ``runs`` (in plan order, which respects ``deps`` and puts each training's evaluations right
    after it) one after another in this process; the run folders are ``results / run.name``.
    ``after(outcome)`` is called as each run ends. ``replan(run)``: the run as planned now (or None); a
    training that finished and is planned anew with other parameters (a training extended to its plateau,
    ``training.plateau_max_epochs``) is executed again, from its checkpoint, before its evaluations."""
    finished = {} if finished is None else finished
    outcomes: dict[str, Outcome] = {}
    needed = needed_outputs(runs, results, repo, force)
    for index, run in enumerate(runs, 1):
        upstream = [outcomes[d] for d in run.deps if d in outcomes]
        required = required_outputs(run, results, repo) if run.name in needed else []
        started = all(o.ok for o in upstream) and (forced(run, force) or not freshness.is_up_to_date(
            results / run.name, Path(run.notebook).name, current_fingerprint(run, results, repo), required))
        if started:
            report(f"[{index}/{len(runs)}] {run.notebook} -> {results.name}/{run.name}")
        outcome = run_one(run, results, repo, forced(run, force), progress, *upstream,
                          outputs_needed=run.name in needed)
        while replan is not None and run.stage == "train" and outcome.status == "done":
            again = replan(run)
            if again is None or again.parameters == run.parameters:
                break
            report(f"{_note(outcome, results, index, len(runs), started)}; not on its plateau after "
                   f"{run.parameters['EPOCHS']} epochs: extended to {again.parameters['EPOCHS']}")
            run = again
            outcome = run_one(run, results, repo, False, progress, *upstream, outputs_needed=run.name in needed)
        outcomes[run.name] = outcome
        finished[run.name] = outcome.status
        report(_note(outcome, results, index, len(runs), started))
        if after is not None:
            after(outcome)
    return list(outcomes.values())


def _worker_plugin_base():
    from distributed.diagnostics.plugin import WorkerPlugin

    return WorkerPlugin


class PinWorker(_worker_plugin_base()):
    """Dask worker plugin: pins the worker to one GPU (``CUDA_VISIBLE_DEVICES``; ``per_gpu`` workers share
    one) or, without GPUs, gives it its share of the cores (``OMP_NUM_THREADS``). Kernels the worker starts
    inherit the environment. The worker's index is its name (LocalCluster names workers 0, 1, ...)."""

    name = "crack-pin-worker"

    def __init__(self, gpus: int, per_gpu: int, threads: int, environ: dict):
        self.gpus, self.per_gpu, self.threads, self.environ = gpus, per_gpu, threads, environ

    def setup(self, worker):
        os.environ.update(self.environ)
        os.environ["CRACK_PINNED"] = "1"
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            index = 0
        if self.gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index % self.gpus)  # round robin: every GPU before a second run on one
        # Dask's nanny starts workers with OMP/MKL/OpenBLAS at 1 thread (distributed.nanny.pre-spawn-environ);
        # the kernels this worker starts inherit what is set here, so a training gets its share of the cores
        # (and the same thread count, hence the same float results, as in one process with that many).
        os.environ.update(thread_settings(self.threads))

    def teardown(self, worker):
        pass


def worker_threads(workers: int, environ=os.environ) -> int:
    """torch/BLAS threads of each of ``workers`` local workers: their share of the cores, at most the
    ``OMP_NUM_THREADS`` this process was started with (a limit the user set is kept; so is the test suite's
    share of the cores, so that one process and the workers compute with the same thread count)."""
    share = max(1, (os.cpu_count() or 1) // workers)
    limit = environ.get("OMP_NUM_THREADS", "")
    return min(share, int(limit)) if limit.isdigit() and int(limit) > 0 else share


def local_cluster(workers: int | None, per_gpu: int = 1, dashboard: bool = True):
    """A Dask ``Client`` on a new ``LocalCluster`` of worker processes on this machine (one thread each,
    each kernel with :func:`worker_threads`): ``workers`` of them (default: GPUs x ``per_gpu``, or 1 without GPUs)."""
    import torch
    from distributed import Client, LocalCluster

    gpus = torch.cuda.device_count()
    n = workers or max(1, gpus * per_gpu)
    if gpus and n > gpus * per_gpu:
        raise ValueError(f"--workers {n} would put more than --per-gpu {per_gpu} trainings on one of the {gpus} GPU(s); "
                         f"use at most {gpus * per_gpu} workers or raise --per-gpu")
    threads = worker_threads(n)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":8787" if dashboard else None)
    client = Client(cluster)
    client.owned_cluster = cluster  # closed with the client by close_client (Client.close leaves it running)
    environ = {k: v for k, v in os.environ.items() if k in ("JUPYTER_PATH", "TQDM_DISABLE")}
    client.register_plugin(PinWorker(gpus, per_gpu, threads, environ), name=PinWorker.name)
    return client


def close_client(client) -> None:
    """Close ``client`` and, for a :func:`local_cluster`, its workers (and so the kernels they run)."""
    cluster = getattr(client, "owned_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def connect(scheduler: str):
    """A Dask ``Client`` for an existing cluster: ``scheduler`` is a ``tcp://host:port`` address or a
    scheduler file (``dask scheduler --scheduler-file ...``, ``SLURMCluster``'s ``scheduler_file``)."""
    from distributed import Client

    if Path(scheduler).expanduser().is_file():
        return Client(scheduler_file=str(Path(scheduler).expanduser()))
    return Client(scheduler)


def run_on_dask(client, runs: list[Run], results: Path, repo: Path, force=None, finished: dict | None = None,
                report=print, after=None) -> list[Outcome]:
    """Submit every run as a task whose arguments are its upstream runs' futures, so each starts as soon
    as its inputs exist; collect the outcomes as they come. A task lost with its worker beyond Dask's
    retries is reported as failed."""
    from distributed import as_completed

    finished = {} if finished is None else finished
    futures, names = {}, {}
    needed = needed_outputs(runs, results, repo, force)
    for index, run in enumerate(runs):
        upstream = [futures[d] for d in run.deps if d in futures]
        # an explicit priority keeps the runs' order among those ready at once (trainings seed by seed, see
        # crack_utils.study.config.trainings): Dask's own FIFO priority is the same for everything submitted
        # within its fifo-timeout, and the whole graph is submitted in far less
        future = client.submit(run_one, run, str(results), str(repo), forced(run, force), False, *upstream,
                               outputs_needed=run.name in needed,
                               key=f"{run.name}-{freshness.new_run_id()[:8]}", pure=False,
                               priority=len(runs) - index)
        futures[run.name], names[future.key] = future, run.name
    outcomes: dict[str, Outcome] = {}
    try:
        for index, future in enumerate(as_completed(list(futures.values())), 1):
            name = names[future.key]
            try:
                outcome = future.result()
            except Exception as err:  # e.g. KilledWorker: the task's worker died too often
                outcome = Outcome(name, "failed", message=f"{type(err).__name__}: {err}")
            outcomes[name] = outcome
            finished[name] = outcome.status
            report(_note(outcome, results, index, len(runs)))
            if after is not None:
                after(outcome)
    except KeyboardInterrupt:
        for future in futures.values():
            future.cancel()
        raise
    return [outcomes[r.name] for r in runs if r.name in outcomes]
