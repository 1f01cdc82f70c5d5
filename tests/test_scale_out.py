"""The study as a graph on Dask, skipping up-to-date runs, faults and a worker killed mid-training
(issue 11). Tiny synthetic studies; each test a minute or two on 2 cores."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from crack_utils.metrics import METRICS
from crack_utils.paths import repo_root
from crack_utils.study.executor import worker_threads
from helpers import threads_env

REPO = repo_root()
pytestmark = pytest.mark.notebooks


def _config(tmp_path, name, losses=("dice", "distance"), **training):
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["losses"] = list(losses)
    config["training"].update(training)
    for key in ("evaluation", "variants"):
        config.pop(key, None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    shutil.rmtree(REPO / "results" / name, ignore_errors=True)
    return path


def _pipeline(config, *extra, timeout=900, env=None):
    return subprocess.run([sys.executable, "-m", "crack_utils.pipeline", "--config", str(config), "--no-progress", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def _run_ids(out):
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())["run_id"] for p in out.rglob("run_metadata.json")}


@pytest.mark.notebooks(seconds=278)
def test_study_on_a_local_dask_cluster_then_nothing_to_do(tmp_path):
    config = _config(tmp_path, "tiny-dask", snapshot_epochs=[])
    out = REPO / "results" / "tiny-dask"
    # One process first, each kernel with the threads a training gets on one of 2 local workers (the cores
    # shared out, PinWorker): float results may depend on the thread count, not on who schedules the runs.
    single = _pipeline(config, env=threads_env(worker_threads(2)))
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
    one_process = {name: (out / name).read_bytes() for name in ("table1.csv", "scores.csv")}
    # The same trainings, evaluations and report again on 2 Dask workers. The live line every 0.2 s: a tiny
    # training's epochs last about a second, the default 15 s could miss them.
    t0 = time.perf_counter()
    first = _pipeline(config, "--workers", "2", "--progress-every", "0.2", "--force", "train", "evaluate", "report")
    first_seconds = time.perf_counter() - t0
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "on Dask (2 local workers)" in first.stdout and "(5 runs executed, 2 up to date)" in first.stdout
    lines = [line for line in first.stdout.splitlines() if "[progress]" in line]
    assert any("-seed0: epoch" in line and "val Dice" in line for line in lines), first.stdout[-3000:]
    assert {name: (out / name).read_bytes() for name in one_process} == one_process  # byte-identical to one process
    table = pd.read_csv(out / "table1.csv")
    assert sorted(table.loss.unique()) == ["dice", "distance"]
    for run in ("01_data", "02_distance", "03_train/dice-seed0", "04_evaluate/distance-seed0", "05_report"):
        meta = json.loads((out / run / "run_metadata.json").read_text())
        assert meta["fingerprint"]["parameters"] and meta["run_id"], run
    assert json.loads((out / "03_train" / "dice-seed0" / "run_metadata.json").read_text())["weights_trained_by"][0]["epochs_to"] == 2
    ids = _run_ids(out)
    t0 = time.perf_counter()
    second = _pipeline(config)  # in one process this time: the same graph, all up to date
    second_seconds = time.perf_counter() - t0
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(0 runs executed, 7 up to date)" in second.stdout
    assert second.stdout.count("up to date, skipped") == 7
    assert _run_ids(out) == ids  # nothing re-executed, no metadata replaced
    assert second_seconds < first_seconds / 2, (second_seconds, first_seconds)  # a small fraction (a generous ratio, not a clock)
    # one loss option changed: exactly that training, its evaluation and the report are rerun
    text = yaml.safe_load(config.read_text())
    text.setdefault("loss_options", {})["distance"] = {"alpha": 2.0}
    config.write_text(yaml.safe_dump(text))
    changed_option = _pipeline(config)
    assert changed_option.returncode == 0 and "(3 runs executed, 4 up to date)" in changed_option.stdout, \
        changed_option.stdout[-2000:]
    after = _run_ids(out)
    assert {k for k, v in after.items() if ids[k] != v} == {"03_train/distance-seed0", "04_evaluate/distance-seed0", "05_report"}
    # --force with a stage: only that stage's runs are re-executed
    forced = _pipeline(config, "--force", "report")
    assert forced.returncode == 0 and "(1 runs executed, 6 up to date)" in forced.stdout, forced.stdout[-2000:]
    assert {k for k, v in _run_ids(out).items() if after[k] != v} == {"05_report"}


@pytest.mark.notebooks(seconds=120)
def test_a_study_grows_in_a_fresh_clone_without_retraining_what_it_holds(tmp_path):
    """A study committed part way (a training per session) and continued from a clone, which has no
    git-ignored outputs: no prepared arrays, no checkpoints, no generated images."""
    config = _config(tmp_path, "tiny-grow", losses=("dice",), snapshot_epochs=[])
    out = REPO / "results" / "tiny-grow"
    first = _pipeline(config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    ids = _run_ids(out)
    history = (out / "03_train" / "dice-seed0" / "history.csv").read_text()

    def as_in_a_fresh_clone():  # what git keeps of a slimmed study: no ignored file, tables only as .xz
        from crack_utils.study import committed

        committed.slim_study(out)
        for pattern in committed.COMPRESSED_TABLES:
            for plain in out.glob(pattern):
                plain.unlink()
        (out / "01_data" / "prepared.npz").unlink()
        shutil.rmtree(out / "checkpoints")
        shutil.rmtree(out / "01_data" / "synthetic", ignore_errors=True)

    as_in_a_fresh_clone()
    same = _pipeline(config)  # nothing reads the missing files: nothing runs
    assert same.returncode == 0 and "(0 runs executed, 5 up to date)" in same.stdout, same.stdout[-2000:]
    assert _run_ids(out) == ids and not (out / "01_data" / "prepared.npz").exists()
    # the study grows by a loss: its training needs the prepared arrays, so the data stage runs again and,
    # with the same manifest, keeps its run (and run_id): the finished training is not retrained
    text = yaml.safe_load(config.read_text())
    text["losses"] = ["dice", "distance"]
    config.write_text(yaml.safe_dump(text))
    grown = _pipeline(config)
    assert grown.returncode == 0, grown.stdout[-3000:] + grown.stderr[-3000:]
    assert "restored its git-ignored outputs" in grown.stdout and "1 executed again only to restore" in grown.stdout
    after = _run_ids(out)
    for run in ("01_data", "02_distance", "03_train/dice-seed0", "04_evaluate/dice-seed0"):
        assert after[run] == ids[run], run
    assert {"03_train/distance-seed0", "04_evaluate/distance-seed0"} <= set(after) and after["05_report"] != ids["05_report"]
    assert (out / "01_data" / "prepared.npz").is_file() and (out / "03_train" / "dice-seed0" / "history.csv").read_text() == history
    # an evaluation forced again needs its training's weights: the training runs again and, with the same
    # per-epoch history, is kept; only the evaluation and the report are new
    as_in_a_fresh_clone()
    forced = _pipeline(config, "--force", "evaluate")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    again = _run_ids(out)
    assert again["03_train/dice-seed0"] == after["03_train/dice-seed0"] and again["01_data"] == after["01_data"]
    assert again["04_evaluate/dice-seed0"] != after["04_evaluate/dice-seed0"]
    assert (out / "checkpoints" / "dice-seed0" / "best.pt").is_file()


@pytest.mark.notebooks(seconds=80)
def test_a_failing_run_stops_only_what_depends_on_it(tmp_path):
    config = _config(tmp_path, "tiny-dask-fault", losses=["dice"], snapshot_epochs=[1])
    empty = tmp_path / "extra-without-pairs"
    empty.mkdir()  # exists (the config check passes), holds no image/mask pairs: evaluation fails
    text = yaml.safe_load(config.read_text())
    text["evaluation"] = {"extra_folder": str(empty)}
    config.write_text(yaml.safe_dump(text))
    out = REPO / "results" / "tiny-dask-fault"
    result = _pipeline(config, "--workers", "2")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 run(s) failed, 1 not run because of them:" in result.stderr
    assert "- tiny-dask-fault/04_evaluate/dice-seed0: notebooks/04_evaluate_model.ipynb failed in cell" in result.stderr
    assert "- tiny-dask-fault/05_report: not run" in result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "04_evaluate" / "dice-seed0.failed").is_dir() and not (out / "05_report").exists()
    # runs that do not need the failed one finished: the training and its budget evaluation
    for run in ("03_train/dice-seed0", "04_evaluate/dice-epoch1-seed0"):
        assert (out / run / "run_metadata.json").is_file(), run


@pytest.mark.notebooks(seconds=100)
def test_worker_killed_mid_training_loses_nothing_and_reaches_the_same_result(tmp_path):
    import psutil
    import torch

    from test_pipeline import _resume_config, resume_env, resume_reference

    # the reference of the in-process kill test (tests/test_pipeline.py): up to date when that test ran first
    reference = resume_reference(tmp_path)
    config = _resume_config(tmp_path, "tiny-dask-kill")
    out = REPO / "results" / "tiny-dask-kill"
    shutil.rmtree(out, ignore_errors=True)
    last = out / "checkpoints" / "distance-seed0" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "crack_utils.pipeline", "--config", str(config), "--no-progress",
                             "--workers", "1", "--stages", "data", "distance", "train", "evaluate"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=resume_env())
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), "no checkpoint appeared"
    kernels = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if any("ipykernel" in part for part in p.cmdline())]
    workers = {k.parent().pid for k in kernels}
    assert len(workers) == 1
    os.kill(workers.pop(), signal.SIGKILL)  # the worker process dies with its kernel; the study goes on
    killed_at = torch.load(last, weights_only=False)["epoch"]
    output, _ = proc.communicate(timeout=900)
    assert killed_at < 4, "the training finished before it could be killed"
    assert proc.returncode == 0, output[-3000:]
    executed = (out / "03_train" / "distance-seed0" / "03_train_model.ipynb").read_text()
    assert "checkpoints: resume" in executed  # Dask retried the task, which continued from last.pt
    ref = json.loads((reference / "04_evaluate" / "distance-seed0" / "scores.json").read_text())
    got = json.loads((out / "04_evaluate" / "distance-seed0" / "scores.json").read_text())
    assert {k: got[k] for k in METRICS} == {k: ref[k] for k in METRICS}
    trained_by = json.loads((out / "03_train" / "distance-seed0" / "run_metadata.json").read_text())["weights_trained_by"]
    assert trained_by[0]["epochs_from"] == 0 and trained_by[-1]["epochs_to"] == 4 and len(trained_by) == 2
