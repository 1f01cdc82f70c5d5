"""Fitting a study into a wall-time budget (crack_utils.tools.budget) and the concurrency figures it reads."""
import json

import pytest
import yaml

from crack_utils.tools.concurrency import aggregate
from crack_utils.study.config import load_config
from crack_utils.paths import repo_root
from crack_utils.tools import budget

MEASURED = {1: 100.0, 2: 180.0, 4: 300.0, 8: 320.0}


def test_throughput_is_measured_interpolated_or_that_of_the_largest_measured_less_5_percent():
    assert budget.throughput_at(4, MEASURED) == 300.0
    assert budget.throughput_at(3, MEASURED) == pytest.approx(240.0)  # halfway between 2 and 4
    assert budget.throughput_at(6, MEASURED) == pytest.approx(310.0)
    assert budget.throughput_at(9, MEASURED) == pytest.approx(0.95 * 320.0)
    assert budget.throughput_at(3, {4: 300.0}) == pytest.approx(225.0)  # from 0 at K = 0
    with pytest.raises(ValueError, match="positive"):
        budget.throughput_at(2, {1: 0.0})
    with pytest.raises(ValueError, match="no throughput"):
        budget.throughput_at(2, {})


def test_predicted_seconds_counts_whole_waves_safety_and_fixed_costs():
    # 9 trainings, 4 at a time: 3 waves of 4 x 1000 images at 300 img/s
    assert budget.predicted_seconds(9, 4, 1000, MEASURED, per_wave_s=10, tail_s=5, safety=2) == pytest.approx(
        2 * 3 * 4 * 1000 / 300 + 3 * 10 + 5)


@pytest.mark.parametrize("budget_s, seeds, epochs, workers, fits", [
    # hand values (per_wave 0, tail 0, safety 1; 3 losses, 50 epochs x 1000 images; waves of whole seeds,
    # K = 3, 6, ...; throughput at K: 3 -> 240, 6 -> 310, 9 and more -> 304 img/s):
    # 5 seeds: 15 at once 2467 s (3 waves of 6: 2903 s; 2 of 9: 2960 s); 4 seeds: 2 waves of 6: 1935.5 s;
    # 3 seeds: 9 at once 1480 s; 2 seeds: 6 at once 968 s; 1 seed: 625 s; 1 seed at 30 epochs: 375 s
    (2500, [0, 1, 2, 3, 4], 50, 15, True),
    (2000, [0, 1, 2, 3], 50, 6, True),
    (1500, [0, 1, 2], 50, 9, True),
    (1000, [0, 1], 50, 6, True),
    (700, [0], 50, 3, True),
    (400, [0], 30, 3, True),
    (1, [0], 1, 3, False),
])
def test_plan_takes_the_most_whole_seeds_that_fit_in_waves_of_whole_seeds_then_fewer_epochs(
        budget_s, seeds, epochs, workers, fits):
    chosen = budget.plan(MEASURED, [0, 1, 2, 3, 4], losses=3, epochs=50, images_per_epoch=1000, budget_s=budget_s,
                         per_wave_s=0, tail_s=0, safety=1)
    assert (chosen.seeds, chosen.epochs, chosen.workers, chosen.fits) == (seeds, epochs, workers, fits)
    assert (chosen.predicted_s <= budget_s) == fits


def test_completed_seeds_are_those_with_every_loss_evaluated(tmp_path):
    from crack_utils.study import layout

    config = {"name": "s", "seeds": [0, 1, 2], "losses": ["bce", "dice"]}
    for loss, seed in [("bce", 0), ("dice", 0), ("bce", 1), ("dice", 2), ("bce", 2)]:
        folder = layout.evaluation_dir(tmp_path / "s", loss, seed)
        folder.mkdir(parents=True)
        (folder / "run_metadata.json").write_text("{}")
    (layout.evaluation_dir(tmp_path / "s", "dice", 1)).mkdir(parents=True)  # begun, not finished
    assert budget.completed_seeds(config, tmp_path) == [0, 2]


def test_the_plan_cli_writes_a_loadable_config_of_the_same_study_and_the_shell_variables(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"device": "x", "img_per_s": {"1": 1000.0, "2": 1500.0}}))
    raw = yaml.safe_load((repo_root() / "configs" / "tiny.yaml").read_text())  # 3 losses, seed 0, 2 x 16 images
    for key in ("variants", "evaluation"):
        raw.pop(key)
    source = tmp_path / "tiny-plan.yaml"
    source.write_text(yaml.safe_dump(raw))
    args = ["plan", "--config", str(source), "--throughput", str(tmp_path / "t.json"), "--budget-s", "1000",
            "--write", str(tmp_path / "run.yaml"), "--env", str(tmp_path / "plan.env")]
    assert budget.main(args) == 0
    run, original = load_config(tmp_path / "run.yaml"), load_config(source)
    assert run == original  # everything fits: the config as it is, under its own name ("tiny-plan")
    env = dict(line.split("=", 1) for line in (tmp_path / "plan.env").read_text().splitlines())
    assert env["SEEDS"] == "'0'" and env["EPOCHS"] == "2" and env["WORKERS"] == "3" and env["FITS"] == "1"
    with pytest.raises(SystemExit, match="variants"):
        budget.main([*args[:2], str(repo_root() / "configs" / "tiny.yaml"), *args[3:]])


def test_a_derived_config_with_fewer_epochs_drops_the_later_budgets_and_says_so():
    raw = budget.derived_config(repo_root() / "configs" / "tiny.yaml", [0], epochs=1)
    assert raw["training"]["epochs"] == 1 and raw["training"]["snapshot_epochs"] == []
    assert raw["description"].startswith("NOT the config's protocol: 1 instead of 2 epochs")
    assert raw["name"] == "tiny"  # the file's stem, written out: a derived config is the same study
    assert yaml.safe_dump(raw)


def test_aggregate_throughput_spans_the_first_start_to_the_last_end():
    reports = [{"images": 100, "start": 10.0, "end": 20.0}, {"images": 50, "start": 12.0, "end": 25.0}]
    assert aggregate(reports) == pytest.approx(150 / 15)
    with pytest.raises(ValueError):
        aggregate([])


_STARTED: list[str] = []  # the runs, in the order a Dask worker (in this process) starts them


def _record_start(run, results, repo, force, progress, *upstream, outputs_needed=True):
    import time

    from crack_utils.study import executor

    _STARTED.append(run.name)
    # the data stage lasts until the whole graph is submitted, as real runs (minutes) do: with 20 ms tasks a
    # loaded machine ran runs while later ones were still being submitted, and the order was then the
    # arrival order (seen once under make test, beside the notebook tests)
    time.sleep(2.0 if run.name == "01_data" else 0.02)
    return executor.Outcome(run.name, "done")


def test_dask_starts_the_runs_that_are_ready_at_once_in_the_order_of_the_plan(monkeypatch, tmp_path):
    """Trainings are planned seed by seed so that a study stopped part way has whole seeds; on Dask that
    order must survive (its FIFO priority is equal for all runs submitted within its fifo-timeout)."""
    from distributed import Client, LocalCluster

    from crack_utils.study import executor
    from crack_utils.study.notebook_run import Run

    monkeypatch.setattr(executor, "run_one", _record_start)
    _STARTED.clear()
    runs = [Run("data", "01_data")]
    for seed in range(4):
        for loss in ("bce", "dice", "distance"):
            runs.append(Run("train", f"03_train/{loss}-seed{seed}", deps=("01_data",)))
            runs.append(Run("evaluate", f"04_evaluate/{loss}-seed{seed}", deps=("01_data", f"03_train/{loss}-seed{seed}")))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        executor.run_on_dask(client, runs, tmp_path, tmp_path, report=lambda *a: None)
    trainings = [name for name in _STARTED if name.startswith("03_train/")]
    assert len(_STARTED) == len(runs)
    assert trainings == [r.name for r in runs if r.stage == "train"]


def test_a_training_process_that_fails_before_it_is_ready_is_reported_with_its_error():
    import torch

    from crack_utils.tools.concurrency import measure

    if torch.cuda.is_available():
        pytest.skip("the failure used here is CUDA asked for on a machine without it")
    args = ["--seconds", "1", "--device", "cuda:7", "--size", "32", "--warmup-steps", "1"]
    with pytest.raises(RuntimeError, match="(?s)did not get ready.*CUDA is not available"):
        measure(1, args, timeout=120)
