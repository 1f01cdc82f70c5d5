"""The study layer without notebooks: layout, fingerprints, the progress line, outcomes of a graph."""
import io
import json
import os
from pathlib import Path

import pytest

from crack_utils.study.config import load_config
from crack_utils.paths import repo_root
from crack_utils.pipeline import failure_summary, plan
from crack_utils.study import freshness, layout, watch
from crack_utils.study.executor import Outcome, run_one


def test_layout_owns_the_run_folders(tmp_path):
    assert layout.run_tag("dice", 3) == "dice-seed3"
    assert layout.train_dir(tmp_path, "dice", 3) == tmp_path / "03_train" / "dice-seed3"
    assert layout.evaluation_dir(tmp_path, "dice", 3) == tmp_path / "04_evaluate" / "dice-seed3"
    assert layout.evaluation_dir(tmp_path, "dice", 3, epoch=5) == tmp_path / "04_evaluate" / "dice-epoch5-seed3"
    assert layout.checkpoint_dir(tmp_path, "bce", 0) == tmp_path / "checkpoints" / "bce-seed0"
    assert layout.parse_tag("distance_alpha2-seed12") == ("distance_alpha2", 12)
    with pytest.raises(ValueError, match="<name>-seed<k>"):
        layout.parse_tag("dice-s0")
    # a budget at the finished training's length, scored with its best weights, is that training's evaluation
    assert layout.budget_run("dice", 3, trained_epochs=3, checkpoint="best") == "dice"
    assert layout.budget_run("dice", 3, trained_epochs=3, checkpoint="last") == "dice-epoch3"
    assert layout.budget_run("dice", 1, trained_epochs=3, checkpoint="best") == "dice-epoch1"


def test_the_scripts_read_the_layout_as_shell_variables():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "crack_utils.study.layout", "paper"], capture_output=True, text=True,
                         check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    assert values["data_dir"] == layout.data_dir(layout.study_dir("paper")).as_posix() == "results/paper/01_data"
    assert values["prepared"] == "results/paper/01_data/prepared.npz" and values["CHECKPOINTS"] == "checkpoints"
    for script in ("gpu_pack.sh", "gpu_paper.sh"):  # no path of the layout written by hand (comments aside)
        code = [line.split("#", 1)[0] for line in (repo_root() / "scripts" / script).read_text().splitlines()]
        assert any('crack_utils.study.layout "$name"' in line for line in code)
        for name in ("01_data", "02_distance", "checkpoints", "prepared.npz", "results/$name", "results/${name}"):
            assert not [line for line in code if name in line], (script, name)


def test_plan_names_and_dependencies_follow_the_layout(tmp_path):
    (tmp_path / "c.yaml").write_text("losses: [dice]\nseeds: [0, 1]\ntraining: {epochs: 3, snapshot_epochs: [1, 3]}\n")
    config = load_config(tmp_path / "c.yaml")
    runs = {r.name: r for r in plan(config)}
    base = Path(layout.study_dir(config["name"]))
    assert runs["01_data"].deps == () and runs["02_distance"].deps == ("01_data",)
    assert runs["03_train/dice-seed1"].deps == ("01_data",)
    assert runs["04_evaluate/dice-seed1"].deps == ("01_data", "03_train/dice-seed1")
    assert runs["04_evaluate/dice-epoch1-seed0"].deps == ("01_data", "03_train/dice-seed0")
    assert set(runs["05_report"].deps) == set(runs) - {"05_report"}
    assert runs["03_train/dice-seed1"].parameters["CHECKPOINT_DIR"] == layout.checkpoint_dir(base, "dice", 1).as_posix()
    order = list(runs)
    for name, run in runs.items():  # plan order respects the graph
        assert all(order.index(d) < order.index(name) for d in run.deps)


def _finished_run(folder: Path, fingerprint: dict, run_id="abc", notebook="n.ipynb"):
    folder.mkdir(parents=True)
    (folder / notebook).write_text("{}")
    (folder / freshness.METADATA).write_text(json.dumps({"run_id": run_id, "fingerprint": fingerprint}))


def test_up_to_date_needs_a_complete_folder_and_the_same_fingerprint(tmp_path):
    fp = freshness.fingerprint("digest", {"LR": 0.001, "LOSSES": ["dice"]}, {"01_data": "id1"})
    _finished_run(tmp_path / "run", fp)
    assert freshness.is_up_to_date(tmp_path / "run", "n.ipynb", fp)
    assert freshness.is_up_to_date(tmp_path / "run", "n.ipynb",  # JSON round trip, key order irrelevant
                                   freshness.fingerprint("digest", {"LOSSES": ["dice"], "LR": 1e-3}, {"01_data": "id1"}))
    assert not freshness.is_up_to_date(tmp_path / "run", "n.ipynb", freshness.fingerprint("other", {"LR": 0.001, "LOSSES": ["dice"]}, {"01_data": "id1"}))
    assert not freshness.is_up_to_date(tmp_path / "run", "n.ipynb", freshness.fingerprint("digest", {"LR": 0.002, "LOSSES": ["dice"]}, {"01_data": "id1"}))
    assert not freshness.is_up_to_date(tmp_path / "run", "n.ipynb", freshness.fingerprint("digest", {"LR": 0.001, "LOSSES": ["dice"]}, {"01_data": "id2"}))
    assert not freshness.is_up_to_date(tmp_path / "run", "other.ipynb", fp)  # executed notebook missing
    assert not freshness.is_up_to_date(tmp_path / "missing", "n.ipynb", fp)
    old = tmp_path / "old"  # made before fingerprints: never up to date
    old.mkdir()
    (old / "n.ipynb").write_text("{}")
    (old / freshness.METADATA).write_text(json.dumps({"parameters": {}}))
    assert not freshness.is_up_to_date(old, "n.ipynb", fp)


def test_run_one_skips_an_up_to_date_run_and_blocks_after_a_failure(tmp_path):
    repo, results = tmp_path, tmp_path / "results" / "s"
    (repo / "nb.ipynb").write_text('{"cells": []}')
    from crack_utils.study.notebook_run import Run
    from crack_utils.study.executor import current_fingerprint

    up = Run("data", "01_data", {"A": 1})
    _finished_run(results / "01_data", {}, run_id="u1", notebook="01_clean_data.ipynb")
    run = Run("distance", "02_distance", {"B": 2}, deps=("01_data",))
    run.__class__ = type("R", (Run,), {"notebook": property(lambda self: "nb.ipynb")})
    _finished_run(results / "02_distance", current_fingerprint(run, results, repo), notebook="nb.ipynb")
    assert run_one(run, results, repo, False, False).status == "skipped"
    blocked = run_one(run, results, repo, False, False, Outcome("01_data", "failed", message="boom"))
    assert blocked.status == "blocked" and "01_data" in blocked.message
    assert up.deps == ()


def test_failure_summary_lists_failures_then_blocked_runs():
    text = failure_summary([Outcome("03_train/a-seed0", "failed", message="nb failed in cell 3"),
                            Outcome("04_evaluate/a-seed0", "blocked", message="not run: it needs 03_train/a-seed0")])
    assert text.splitlines()[0] == "1 run(s) failed, 1 not run because of them:"
    assert "03_train/a-seed0: nb failed in cell 3" in text and "04_evaluate/a-seed0: not run" in text


def test_training_line_and_eta():
    assert watch.training_line("bce-seed0", None) == "bce-seed0: starting"
    mid = {"epoch": 1, "epochs": 10, "batch": 57, "batches": 228, "train_loss": 0.23124, "val_dice": 0.6123,
           "seconds_per_epoch": 615.2}
    assert watch.training_line("bce-seed0", mid) == \
        "bce-seed0: epoch 2/10 (25 %), loss 0.2312, val Dice 0.612, 615 s/epoch"
    end = dict(mid, epoch=10, batch=0)
    assert watch.training_line("bce-seed0", end).startswith("bce-seed0: epoch 10/10,")
    assert watch.remaining_epochs(10, mid) == pytest.approx(8.75)
    assert watch.remaining_epochs(10, None) == 10
    # extended to its plateau: planned at 12, now running passes 13-14 from its checkpoint
    extending = dict(mid, epoch=12, epochs=14, batch=114)
    assert watch.remaining_epochs(12, extending) == pytest.approx(1.5)
    assert watch.remaining_epochs(14, dict(mid, epochs=12)) == pytest.approx(12.75)  # plan longer: the plan
    assert watch.eta_seconds(8.75, None, 3, 30.0, 1) is None  # nothing timed yet: no guess
    assert watch.eta_seconds(8.75, 600.0, 3, 30.0, 1) == pytest.approx(8.75 * 600 + 90)
    assert watch.eta_seconds(8.75, 600.0, 3, 30.0, 2) == pytest.approx((8.75 * 600 + 90) / 2)
    line = watch.status_line(3, ["03_train/bce-seed0"], 11, 0, 5340.0, [watch.training_line("bce-seed0", mid)])
    assert line == ("  [progress] 3 done, 1 running, 11 queued, ETA 89 min | "
                    "bce-seed0: epoch 2/10 (25 %), loss 0.2312, val Dice 0.612, 615 s/epoch")


def test_epoch_time_is_extrapolated_from_a_running_first_epoch():
    first = {"epoch": 0, "epochs": 1, "batch": 58, "batches": 228, "train_loss": 0.3, "val_dice": None,
             "seconds_per_epoch": None, "epoch_seconds": 150.0}
    assert watch.estimated_seconds_per_epoch(first) == pytest.approx(600.0)  # 57 of 228 steps in 150 s
    assert watch.estimated_seconds_per_epoch(dict(first, seconds_per_epoch=640.0)) == 640.0  # measured wins
    assert watch.estimated_seconds_per_epoch(dict(first, batch=4)) is None  # 3 steps, under 2 %: too early
    short = dict(first, batches=10, batch=2, epoch_seconds=4.0)  # a short epoch: from its first finished step
    assert watch.estimated_seconds_per_epoch(short) == pytest.approx(40.0)
    assert watch.estimated_seconds_per_epoch(dict(short, batch=1, epoch_seconds=0.0)) is None  # none finished
    assert watch.estimated_seconds_per_epoch(dict(first, epoch_seconds=None)) is None  # an older progress file
    assert watch.estimated_seconds_per_epoch(None) is None
    assert watch.eta_seconds(watch.remaining_epochs(1, first), watch.estimated_seconds_per_epoch(first), 2, 30.0, 1) \
        == pytest.approx((1 - 58 / 228) * 600 + 60)


def test_watcher_reads_running_trainings_from_the_files(tmp_path):
    from crack_utils.study.notebook_run import Run

    repo = tmp_path
    results = repo / "results" / "s"
    ckpt = results / "checkpoints" / "bce-seed0"
    ckpt.mkdir(parents=True)
    runs = [Run("data", "01_data"), Run("train", "03_train/bce-seed0", {"EPOCHS": 4, "CHECKPOINT_DIR": "results/s/checkpoints/bce-seed0"}),
            Run("evaluate", "04_evaluate/bce-seed0")]
    finished = {"01_data": "done"}
    stream = io.StringIO()
    w = watch.Watcher(runs, results, repo, finished, stream=stream)
    assert "1 done, 0 running, 2 queued" in w.line()
    (results / "03_train" / ".tmp-bce-seed0").mkdir(parents=True)
    (ckpt / "progress.json").write_text(json.dumps({"epoch": 2, "epochs": 4, "batch": 0, "batches": 10,
                                                    "train_loss": 0.5, "val_dice": 0.4, "seconds_per_epoch": 100.0}))
    w.tick()
    w.tick()  # unchanged: printed once
    out = stream.getvalue().splitlines()
    assert len(out) == 1 and "1 done, 1 running, 1 queued, ETA" in out[0]
    assert "bce-seed0: epoch 2/4, loss 0.5000, val Dice 0.400, 100 s/epoch" in out[0]
    # a one-epoch training: an ETA while its only epoch runs, from the share done so far
    (ckpt / "progress.json").write_text(json.dumps({"epoch": 0, "epochs": 1, "batch": 6, "batches": 10,
                                                    "train_loss": 0.5, "val_dice": None, "seconds_per_epoch": None,
                                                    "epoch_seconds": 40.0}))
    runs[1].parameters["EPOCHS"] = 1
    w = watch.Watcher(runs, results, repo, finished, stream=io.StringIO())
    assert "1 running, 1 queued, ETA 62 s | bce-seed0: epoch 1/1 (60 %)" in w.line()  # 0.4 x 80 s + one 30 s run
    # when it has finished, its measured epoch replaces the estimate in later ETAs
    (ckpt / "progress.json").write_text(json.dumps({"epoch": 1, "epochs": 1, "batch": 0, "batches": 10,
                                                    "train_loss": 0.4, "val_dice": 0.5, "seconds_per_epoch": 95.0,
                                                    "epoch_seconds": None}))
    (results / "03_train" / ".tmp-bce-seed0").rmdir()
    finished["03_train/bce-seed0"] = "done"
    w.line()
    assert w._per_epoch == {"03_train/bce-seed0": 95.0}


def test_readme_slurm_recipe_asks_one_gpu_and_one_run_per_job(monkeypatch):
    # the copy-pasteable recipe in docs/scale-out.md (moved there from the README) must build a cluster whose
    # jobs each hold one GPU and run one notebook at a time (a worker with 8 threads would start 8 trainings on
    # one GPU)
    import re

    from crack_utils.paths import repo_root

    text = (repo_root() / "docs" / "scale-out.md").read_text()
    recipe = re.search(r"```python\n(from dask_jobqueue import SLURMCluster.*?)```", text, re.S).group(1)
    submitted = {}
    import crack_utils.pipeline

    monkeypatch.setattr(crack_utils.pipeline, "run_study", lambda config, **kw: submitted.update(config=config, **kw))
    namespace: dict = {}
    exec(compile(recipe.replace("cluster.adapt(", "(lambda **kw: None)("), "docs/scale-out.md", "exec"), namespace)
    cluster = namespace["cluster"]
    try:
        script = cluster.job_script()
        assert "#SBATCH --gres=gpu:1" in script and "--nthreads 1" in script and "--lifetime" in script
        assert submitted == {"config": "configs/paper.yaml", "scheduler": cluster.scheduler_address}
    finally:
        cluster.close()


def test_required_outputs_outside_the_folder_count(tmp_path):
    fp = freshness.fingerprint("d", {}, {})
    _finished_run(tmp_path / "run", fp)
    assert freshness.is_up_to_date(tmp_path / "run", "n.ipynb", fp, [tmp_path / "run" / "n.ipynb"])
    assert not freshness.is_up_to_date(tmp_path / "run", "n.ipynb", fp, [tmp_path / "checkpoints" / "best.pt"])


def test_a_forced_training_starts_afresh_and_surprises_become_failures(tmp_path, monkeypatch):
    from crack_utils.study import executor
    from crack_utils.study.notebook_run import Run

    ckpt = tmp_path / "results" / "s" / "checkpoints" / "dice-seed0"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_text("old")
    seen = {}

    def fake_execute(run, results, repo, kernel, progress=True, fingerprint=None, restore=False):
        seen["checkpoint_left"] = (ckpt / "last.pt").exists()
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(executor, "execute", fake_execute)
    monkeypatch.setattr(executor, "kernel_name", lambda: "python3")
    monkeypatch.setattr(executor, "current_fingerprint", lambda run, results, repo: {})
    run = Run("train", "s/03_train/dice-seed0", {"CHECKPOINT_DIR": "results/s/checkpoints/dice-seed0"})
    outcome = executor.run_one(run, tmp_path / "results", tmp_path, True, False)
    assert seen == {"checkpoint_left": False}  # --force train retrains; it does not resume the old weights
    assert outcome.status == "failed" and "RuntimeError: Kernel died" in outcome.message


def test_a_dying_kernel_is_a_study_error_with_the_attempt_kept(tmp_path, monkeypatch):
    import papermill

    from crack_utils.study.notebook_run import Run, StudyError, execute
    from crack_utils.paths import repo_root

    def dies(input_path, output_path, **kwargs):
        Path(output_path).write_text("{}")
        raise RuntimeError("Kernel died")  # what nbclient's DeadKernelError is

    import shutil

    monkeypatch.setattr(papermill, "execute_notebook", dies)
    results = repo_root() / "results" / "tiny-dying-kernel"
    shutil.rmtree(results, ignore_errors=True)
    try:
        with pytest.raises(StudyError, match="stopped: RuntimeError: Kernel died.*out of memory"):
            execute(Run("distance", "02_distance", {"DATA_DIR": "x", "NORMALIZATION": "radius", "RADIUS": 20.0}),
                    results, repo_root(), "python3", progress=False)
        assert (results / "02_distance.failed").is_dir() and not (results / ".tmp-02_distance").exists()
    finally:
        shutil.rmtree(results, ignore_errors=True)


def test_workers_are_pinned_to_gpus_round_robin(monkeypatch):
    import os

    from crack_utils.study.executor import PinWorker

    pinned = []
    # setup() writes into os.environ: let monkeypatch restore what it sets (else this xdist worker's later
    # kernels would run 4 threads on its share of the cores)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CRACK_PINNED"):
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    for index in range(4):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        PinWorker(gpus=2, per_gpu=2, threads=4, environ={}).setup(type("W", (), {"name": index})())
        pinned.append(os.environ["CUDA_VISIBLE_DEVICES"])
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "4"
    assert pinned == ["0", "1", "0", "1"]


def test_provenance_of_a_training_is_who_trained_its_weights(tmp_path):
    from crack_utils.study.notebook_run import Run
    from crack_utils.study.publishing import provenance_html, run_commits

    folder = tmp_path / "03_train" / "dice-seed0"
    folder.mkdir(parents=True)
    (folder / "run_metadata.json").write_text(json.dumps({
        "git": {"commit": "bbbbbbbbbbbb", "dirty": False},  # a rerun that trained nothing
        "weights_trained_by": [{"git": {"commit": "aaaaaaaaaaaa", "dirty": False}}]}))
    evaluation = tmp_path / "04_evaluate" / "dice-seed0"
    evaluation.mkdir(parents=True)
    (evaluation / "run_metadata.json").write_text(json.dumps({"git": {"commit": "bbbbbbbbbbbb", "dirty": True}}))
    commits = run_commits(tmp_path, [Run("train", "03_train/dice-seed0"), Run("evaluate", "04_evaluate/dice-seed0")])
    assert commits == {"aaaaaaaaaa": ["03_train/dice-seed0"], "bbbbbbbbbb+dirty": ["04_evaluate/dice-seed0"]}
    assert "2 different commits" in provenance_html(commits)


def test_the_study_page_names_the_machines_that_trained_it_and_warns_when_they_differ(tmp_path):
    from crack_utils.study.publishing import machines_html, training_machines

    amd = {"cpu_model": "AMD EPYC", "cpu_isa": "AVX2"}
    xeon = {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_isa": "AVX512"}
    for name, segments in {"bce-seed0": [amd], "dice-seed0": [amd, xeon]}.items():
        folder = tmp_path / "03_train" / name
        folder.mkdir(parents=True)
        (folder / "run_metadata.json").write_text(json.dumps({
            "device": {"cpu_model": "rerun machine"}, "weights_trained_by": [{"device": d} for d in segments]}))
    evaluation = tmp_path / "04_evaluate" / "bce-seed0"
    evaluation.mkdir(parents=True)
    (evaluation / "run_metadata.json").write_text(json.dumps({"device": {"cpu_model": "GPU box", "gpu": "H100"}}))
    runs = ["03_train/bce-seed0", "03_train/dice-seed0", "04_evaluate/bce-seed0", "03_train/absent-seed0"]
    machines = training_machines(tmp_path, runs)
    assert machines == {"AMD EPYC (AVX2)": ["03_train/bce-seed0", "03_train/dice-seed0"],
                        "Intel(R) Xeon(R) Processor (AVX512)": ["03_train/dice-seed0"]}
    assert "2 kinds of machine" in machines_html(machines)
    assert machines_html({"AMD EPYC (AVX2)": ["03_train/bce-seed0"]}) == "<p>All trainings ran on AMD EPYC (AVX2).</p>"
    assert machines_html({}) == ""


def test_isa_check_control_is_bit_identical_and_the_table_names_each_setting():
    from crack_utils.tools.isa_check import compare

    table = compare(steps=2, size=32, batch=2, settings={"native": {}, "native (again)": {}})
    assert table.setting.tolist() == ["native", "native (again)"]
    # two fresh processes with the same kernels: the same losses and bit-identical weights
    assert table.max_abs_weight_diff.tolist() == [0.0, 0.0] and table.first_step_loss_differs.tolist() == [-1, -1]
    assert (table.first_loss_abs_diff == 0).all() and table.cpu_isa.nunique() == 1


def test_one_pipeline_per_study_the_second_stops_naming_the_first(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from crack_utils.study.lock import study_lock
    from crack_utils.study.notebook_run import StudyError

    with study_lock(tmp_path / "study"):
        with pytest.raises(StudyError, match=rf"being run by another pipeline \(pid {os.getpid()} on {socket.gethostname()}"):
            with study_lock(tmp_path / "study"):
                pass
        # another process, as a second `python -m crack_utils.pipeline` would be
        other = subprocess.run([sys.executable, "-c", "from crack_utils.study.lock import study_lock\n"
                                f"with study_lock({str(tmp_path / 'study')!r}): pass"], capture_output=True, text=True)
        assert other.returncode != 0 and f"pid {os.getpid()}" in other.stderr
    with study_lock(tmp_path / "study"):  # released when the holder's block ends
        pass
    # a holder that dies without cleaning up leaves no stale lock
    subprocess.run([sys.executable, "-c", "import os\nfrom crack_utils.study.lock import study_lock\n"
                    f"with study_lock({str(tmp_path / 'study')!r}): os._exit(9)"], check=False)
    with study_lock(tmp_path / "study"):
        pass


def test_the_pipeline_command_refuses_a_study_another_pipeline_runs(tmp_path, capsys):
    import shutil

    from crack_utils import pipeline
    from crack_utils.paths import repo_root
    from crack_utils.study.lock import study_lock

    config = tmp_path / "tiny-lock.yaml"  # results/tiny*/ is git-ignored
    config.write_text("losses: [dice]\n")
    study = repo_root() / "results" / "tiny-lock"
    try:
        with study_lock(study):
            assert pipeline.main(["--config", str(config), "--no-progress"]) == 1
        assert "being run by another pipeline" in capsys.readouterr().err
        assert not (study / layout.DATA).exists()  # nothing ran
    finally:
        shutil.rmtree(study, ignore_errors=True)


def test_one_process_scores_each_training_before_starting_the_next(tmp_path):
    # in one process the runs execute in plan order: a study stopped after some hours keeps scored trainings
    (tmp_path / "b.yaml").write_text("losses: [bce, dice]\ntraining: {epochs: 2, snapshot_epochs: [1, 2]}\n")
    runs = plan(load_config(tmp_path / "b.yaml"))
    order = [r.name for r in runs]
    assert order == ["01_data", "02_distance",
                     "03_train/bce-seed0", "04_evaluate/bce-seed0", "04_evaluate/bce-epoch1-seed0",
                     "03_train/dice-seed0", "04_evaluate/dice-seed0", "04_evaluate/dice-epoch1-seed0",
                     "05_report"]
    position = {name: i for i, name in enumerate(order)}
    assert all(position[d] < position[r.name] for r in runs for d in r.deps)  # inputs always come first


def test_a_filesystem_that_cannot_lock_runs_the_study_with_a_warning(tmp_path, monkeypatch):
    import errno
    import fcntl

    from crack_utils.study import lock

    def no_locks(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot lock"):
        with lock.study_lock(tmp_path / "study") as path:
            assert path.name == ".lock"


def test_xdist_workers_share_the_cores_and_a_set_thread_count_is_kept():
    import torch

    from helpers import share_cores_among_xdist_workers

    before = torch.get_num_threads()
    try:
        environ = {"PYTEST_XDIST_WORKER_COUNT": "2"}
        threads = share_cores_among_xdist_workers(environ)
        assert threads == max(1, (os.cpu_count() or 1) // 2) and torch.get_num_threads() == threads
        assert {environ[v] for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {str(threads)}
        kept = {"PYTEST_XDIST_WORKER_COUNT": "2", "OMP_NUM_THREADS": "3"}
        assert share_cores_among_xdist_workers(kept) is None and kept["OMP_NUM_THREADS"] == "3"
        assert share_cores_among_xdist_workers({}) is None  # a plain pytest run: torch's own choice
    finally:
        torch.set_num_threads(before)


def test_local_workers_get_their_share_of_the_cores_within_a_thread_limit_the_user_set():
    from crack_utils.study.executor import worker_threads

    cores = os.cpu_count() or 1
    assert worker_threads(1, {}) == cores and worker_threads(2, {}) == max(1, cores // 2)
    assert worker_threads(4 * cores, {}) == 1
    assert worker_threads(1, {"OMP_NUM_THREADS": "1"}) == 1  # a limit is kept
    assert worker_threads(1, {"OMP_NUM_THREADS": str(4 * cores)}) == cores  # never more than the share
    assert worker_threads(1, {"OMP_NUM_THREADS": ""}) == worker_threads(1, {"OMP_NUM_THREADS": "x"}) == cores


def test_the_package_map_names_every_module():
    # crack_utils/__init__.py and crack_utils/study/__init__.py map the modules by concern; a new module
    # must be placed on the map
    import crack_utils
    import crack_utils.realdata
    import crack_utils.study
    import crack_utils.tools
    from crack_utils.paths import repo_root

    import re

    packages = ((crack_utils, "crack_utils"), (crack_utils.study, "crack_utils/study"),
                (crack_utils.tools, "crack_utils/tools"), (crack_utils.realdata, "crack_utils/realdata"))
    for package, folder in packages:
        modules = {p.stem for p in (repo_root() / folder).glob("*.py")} - {"__init__"}
        modules |= {p.parent.name for p in (repo_root() / folder).glob("*/__init__.py")}
        named = set(re.findall(r":mod:`\.(\w+)`", package.__doc__))
        assert named == modules, f"{folder}/__init__.py: not placed {sorted(modules - named)}, gone {sorted(named - modules)}"


def test_the_last_line_points_to_the_report_page_only_when_there_is_one(tmp_path):
    from crack_utils.pipeline import report_pointer

    assert report_pointer("results/s", tmp_path, True) == "results in results/s/ (no report page: the report stage has not run)"
    (tmp_path / "results" / "s").mkdir(parents=True)
    (tmp_path / "results" / "s" / "report.html").write_text("<h1>s</h1>")
    assert report_pointer("results/s", tmp_path, True) == "see results/s/report.html"
    assert report_pointer("results/s", tmp_path, False) == "see results/s/report.html (from an earlier report stage)"


def _history_run(repo: Path, results: Path, run, val_dice, **changed):
    """A finished training run of ``run`` (as the pipeline names it, relative to ``results``) whose history
    has ``val_dice`` per epoch, with the fingerprint it would have now at that length (and ``changed``
    parameters)."""
    import pandas as pd

    from crack_utils.study.executor import current_fingerprint
    from crack_utils.study.notebook_run import Run

    folder = results / run.name
    folder.mkdir(parents=True, exist_ok=True)
    done = Run(run.stage, run.name, dict(run.parameters, EPOCHS=len(val_dice), **changed), run.deps)
    (folder / freshness.METADATA).write_text(json.dumps({"run_id": "t", "fingerprint": current_fingerprint(done, results, repo)}))
    pd.DataFrame({"epoch": range(1, len(val_dice) + 1), "val_dice": val_dice}).to_csv(folder / "history.csv", index=False)


def test_a_training_to_its_plateau_is_planned_from_its_history(tmp_path):
    # training.plateau_max_epochs: a finished training not on its plateau is planned two epochs longer (it is
    # then extended from its checkpoint); one on it, or at the maximum, keeps its length; one that will be
    # trained afresh (other parameters, a rerun upstream, --force train) or is new plans training.epochs
    from crack_utils.pipeline import study_runs

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "03_train_model.ipynb").write_text("{}")
    (tmp_path / "p.yaml").write_text("name: p\nlosses: [bce, dice]\n"
                                     "training: {epochs: 4, plateau_max_epochs: 8, snapshot_epochs: [2]}\n")
    config = load_config(tmp_path / "p.yaml")
    _finished_run(tmp_path / "results" / "p" / "01_data", {}, run_id="d1")

    def planned():
        return {r.name: r.parameters["EPOCHS"] for r in plan(config, tmp_path) if r.stage == "train"}

    assert planned() == {"03_train/bce-seed0": 4, "03_train/dice-seed0": 4}
    # runs as the pipeline executes and records them: named (and their deps) relative to results/
    runs = {r.name.removeprefix("p/"): r for r in study_runs(config, repo=tmp_path)}
    assert runs["03_train/bce-seed0"].deps == ("p/01_data",)
    study = tmp_path / "results"
    rising, flat = [0.5, 0.6, 0.61, 0.63], [0.5, 0.6, 0.601, 0.603]
    _history_run(tmp_path, study, runs["03_train/bce-seed0"], rising)
    _history_run(tmp_path, study, runs["03_train/dice-seed0"], flat)
    assert planned() == {"03_train/bce-seed0": 6, "03_train/dice-seed0": 4}
    assert {r.parameters["EPOCHS"] for r in plan(config, tmp_path, histories=False) if r.stage == "train"} == {4}
    _history_run(tmp_path, study, runs["03_train/bce-seed0"], rising + [0.64, 0.66])  # still rising at 6
    assert planned()["03_train/bce-seed0"] == 8
    _history_run(tmp_path, study, runs["03_train/bce-seed0"], rising + [0.64, 0.66, 0.67, 0.70])  # the maximum
    assert planned()["03_train/bce-seed0"] == 8
    _history_run(tmp_path, study, runs["03_train/dice-seed0"], rising, LR=0.001)  # another training: afresh
    assert planned()["03_train/dice-seed0"] == 4
    _history_run(tmp_path, study, runs["03_train/dice-seed0"], rising)
    assert planned()["03_train/dice-seed0"] == 6
    def trained(force):
        return {r.name: r.parameters["EPOCHS"] for r in study_runs(config, ["train"], force, tmp_path)}

    assert trained(None)["p/03_train/bce-seed0"] == 8 and trained({"evaluate"})["p/03_train/bce-seed0"] == 8
    assert set(trained({"train"}).values()) == set(trained(True).values()) == {4}  # retrained from scratch
    (study / "p" / "01_data" / freshness.METADATA).write_text(json.dumps({"run_id": "d2", "fingerprint": {}}))
    assert planned()["03_train/dice-seed0"] == 4  # its data were prepared again: afresh
    for bad, why in (("{epochs: 4, plateau_max_epochs: 3}", "at least training.epochs"),
                     ("{epochs: 4, plateau_max_epochs: 8, lr_schedule: cosine}", "needs lr_schedule: constant"),
                     ("{epochs: 4, plateau_max_epochs: 8, snapshot_epochs: [2, 4]}", "snapshot_epochs below")):
        (tmp_path / "bad.yaml").write_text(f"training: {bad}\n")
        with pytest.raises(Exception, match=why):
            load_config(tmp_path / "bad.yaml")


def test_one_process_extends_a_training_to_its_plateau_before_scoring_it(tmp_path, monkeypatch):
    # run_in_process asks replan after each finished training and executes it again (never forced: forcing
    # would delete the checkpoint it continues from) until its plan stops changing; then its evaluation
    from crack_utils.study import executor
    from crack_utils.study.notebook_run import Run

    executed = []

    def fake_run_one(run, results, repo, force, progress, *upstream, outputs_needed=True):
        executed.append((run.name, run.parameters.get("EPOCHS"), force))
        return Outcome(run.name, "done")

    monkeypatch.setattr(executor, "run_one", fake_run_one)
    monkeypatch.setattr(executor, "needed_outputs", lambda *a, **k: set())
    monkeypatch.setattr(executor, "current_fingerprint", lambda *a: {})
    monkeypatch.setattr(executor.freshness, "is_up_to_date", lambda *a: False)
    train = Run("train", "s/03_train/bce-seed0", {"EPOCHS": 12})
    runs = [train, Run("evaluate", "s/04_evaluate/bce-seed0", {}, deps=(train.name,))]

    def replan(run):
        return Run(run.stage, run.name, {"EPOCHS": min(run.parameters["EPOCHS"] + 2, 16)}, run.deps)

    lines = []
    outcomes = executor.run_in_process(runs, tmp_path, tmp_path, force=True, replan=replan, report=lines.append)
    assert executed == [("s/03_train/bce-seed0", 12, True), ("s/03_train/bce-seed0", 14, False),
                        ("s/03_train/bce-seed0", 16, False), ("s/04_evaluate/bce-seed0", None, True)]
    assert [o.status for o in outcomes] == ["done", "done"]
    assert any("not on its plateau after 12 epochs: extended to 14" in line for line in lines)
    executed.clear()
    executor.run_in_process(runs, tmp_path, tmp_path, replan=lambda run: None, report=lines.append)
    assert [e[1] for e in executed] == [12, None]
