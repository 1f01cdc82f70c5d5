"""Executes every notebook through the pipeline on tiny configs (about a minute on 2 cores)."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crack_utils.metrics import METRICS
from crack_utils.paths import repo_root
from crack_utils.pipeline import plan
from crack_utils.study.config import load_config
from helpers import expected_bench_figures, threads_env

REPO = repo_root()
pytestmark = pytest.mark.notebooks


def run_pipeline(config, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "crack_utils.pipeline", "--config", str(config), "--no-progress", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)


def resume_env() -> dict:
    """The environment of the kill-and-resume studies: every kernel with as many threads as the one Dask worker
    of ``--workers 1`` gets (``executor.worker_threads(1)``: all cores, or this test worker's share of them
    under ``make test``), so the in-process reference, the in-process resumed run and the Dask one can be
    compared float for float (torch's default can be fewer threads, e.g. physical cores)."""
    from crack_utils.study.executor import worker_threads

    return threads_env(worker_threads(1))


def test_plan_runs_train_and_evaluate_per_loss_and_seed(tmp_path):
    (tmp_path / "p.yaml").write_text("losses: [dice, distance]\nseeds: [0, 1]\n")
    names = [r.name for r in plan(load_config(tmp_path / "p.yaml"))]
    assert names[:2] == ["01_data", "02_distance"] and names[-1] == "05_report"
    assert names.count("03_train/distance-seed1") == 1 and len(names) == 2 + 2 * 2 * 2 + 1
    (tmp_path / "v.yaml").write_text("losses: [dice]\nvariants: {hard: {loss: distance, mode: hard}}\n")
    runs = {r.name: r for r in plan(load_config(tmp_path / "v.yaml"))}
    assert runs["03_train/hard-seed0"].parameters["LOSS"] == "distance"
    assert runs["03_train/hard-seed0"].parameters["LOSS_OPTIONS"] == {"alpha": 4.0, "mode": "hard"}
    assert runs["05_report"].parameters["VARIANTS"] == ["hard"] and "04_evaluate/hard-seed0" in runs
    assert runs["03_train/hard-seed0"].parameters["DECODER_CHANNELS"] == [256, 128, 64, 32, 16]
    (tmp_path / "b.yaml").write_text("losses: [dice]\ntraining: {epochs: 3, snapshot_epochs: [1, 3]}\n")
    names = [r.name for r in plan(load_config(tmp_path / "b.yaml"))]
    # epoch 3 is the finished training's own (best-checkpoint) evaluation; epoch 1 gets its own run
    assert [n for n in names if n.startswith("04_evaluate/")] == ["04_evaluate/dice-seed0", "04_evaluate/dice-epoch1-seed0"]


@pytest.mark.notebooks(seconds=364)
def test_tiny_study_end_to_end():
    import shutil

    for leftover in ("tiny", "tiny_generalization"):  # from an earlier run: up-to-date runs would be skipped
        shutil.rmtree(REPO / "results" / leftover, ignore_errors=True)
    result = run_pipeline("configs/tiny.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.rstrip().endswith("see results/tiny/report.html"), result.stdout[-500:]
    out = REPO / "results" / "tiny"
    for name in ("table1.csv", "table1.md", "figure2.png", "figure2_errors.png", "report.html", "training_curves.png",
                 "table1_stats.csv", "paired_comparisons.csv", "claims_summary.csv", "claims.png"):
        assert (out / name).is_file(), name
    paired = pd.read_csv(out / "paired_comparisons.csv")
    assert paired.comparison.tolist() == ["distance - bce", "distance - dice"]
    assert {"mean_diff", "ci_low", "ci_high", "p_seeds", "seeds_agree", "per_seed", "evidence"} <= set(paired.columns)
    assert (paired.evidence == "one training").all() and paired.p_seeds.isna().all()  # tiny.yaml: one seed
    claims = pd.read_csv(out / "claims_summary.csv")
    assert claims.loss.tolist() == ["bce", "dice", "distance"] and claims.cldice_mean.between(0, 1).all()
    assert {"fp_far_5px", "betti0_error", "cldice", "tol_f1"} <= set(
        pd.read_csv(out / "04_evaluate" / "dice-seed0" / "claims.csv").columns)
    table = pd.read_csv(out / "table1.csv")
    assert list(table.columns) == ["metric", "loss", "ours_pooled", "ours_pooled_std", "ours_macro", "paper", "n_seeds"]
    assert sorted(table.loss.unique()) == ["bce", "dice", "distance"] and sorted(table.metric.unique()) == sorted(METRICS)
    assert table.ours_pooled.between(0, 1).all()
    assert "| Precision |" in (out / "table1.md").read_text()
    from crack_utils.study.layout import PUBLISHED

    # everything notebook 05 writes is published (the list in study/layout.py is kept in step with it)
    assert sorted(p.name for p in (out / "05_report").iterdir() if p.name not in PUBLISHED) == [
        "05_make_figures.html", "05_make_figures.ipynb", "run_metadata.json", "test_split.npz"]
    page = (out / "report.html").read_text()
    assert "<td>Precision</td>" in page and "alpha_curve.png" in page and "<td>distance_diagonal</td>" in page
    for run in ("01_data", "02_distance", "03_train/dice-seed0", "04_evaluate/distance-seed0", "05_report"):
        folder = out / run
        notebooks = list(folder.glob("*.ipynb"))
        assert len(notebooks) == 1 and notebooks[0].with_suffix(".html").is_file(), run
        meta = json.loads((folder / "run_metadata.json").read_text())
        assert {"git", "packages", "device", "parameters", "wall_seconds"} <= set(meta)
        assert not str(REPO) in (folder / notebooks[0].name).read_text(), "machine path recorded"
    manifest = pd.read_csv(out / "01_data" / "manifest.csv")
    assert {"key", "split", "excluded", "exclusion_reason", "source_group"} <= set(manifest.columns)
    history = pd.read_csv(out / "03_train" / "distance-seed0" / "history.csv")
    assert {"epoch", "train_loss", "val_loss", "val_dice"} <= set(history.columns)
    per_image = pd.read_csv(out / "04_evaluate" / "bce-seed0" / "per_image.csv")
    assert {"key", "dataset", *METRICS, "tp", "fp", "fn"} <= set(per_image.columns)
    for name in ("extra_folder_stats.csv", "extra_folder_claims.csv", "protocol.md"):
        assert (out / name).is_file(), name
    extra_stats = pd.read_csv(out / "extra_folder_stats.csv")
    assert set(extra_stats.loss) == {"bce", "dice", "distance"} and {"mean", "std", "ci_low"} <= set(extra_stats.columns)
    assert {"fp_far_20px_share", "betti0_error_mean", "cldice_mean"} <= set(pd.read_csv(out / "extra_folder_claims.csv").columns)
    assert {"fp_far_5px", "cldice"} <= set(pd.read_csv(out / "04_evaluate" / "bce-seed0" / "extra_claims.csv").columns)
    protocol = (out / "protocol.md").read_text()
    assert protocol.startswith("Protocol: U-Net (resnet18, decoder 64-32-16-8-8)") and "2 epochs × 16 images" in protocol
    assert (out / "table1.md").read_text().startswith(protocol.strip()) and protocol.strip() in page
    extra = json.loads((out / "04_evaluate" / "dice-seed0" / "extra_scores.json").read_text())
    assert extra["folder"] == "results/tiny/01_data/synthetic/n40-s96-seed1" and 0 <= extra["dice"] <= 1
    assert "Data summary" in result.stdout and "40 pairs found" in result.stdout
    assert not list(out.glob(".tmp-*")) and not list(out.glob("*.failed"))
    # ablations and peers (tiny.yaml's variants): the table, the alpha curve, the FP-distance histogram
    for name in ("ablation.csv", "alpha_curve.png", "fp_distances.png", "fp_distances.csv"):
        assert (out / name).is_file(), name
    fp_hist = pd.read_csv(out / "fp_distances.csv")
    assert fp_hist.groupby("loss").share.sum().round(6).eq(1).all()
    ablation = pd.read_csv(out / "ablation.csv")
    assert ablation.run.tolist() == ["bce", "dice", "distance", "distance_alpha2", "distance_diagonal", "boundary"]
    assert ablation.diff_vs_dice.isna().tolist() == [False, True, False, False, False, False]
    assert ablation.set_index("run").loc["distance_diagonal", "normalization"] == "diagonal"
    # training length (tiny.yaml: snapshot_epochs [1, 2] over 16 of the training images per epoch)
    length = pd.read_csv(out / "training_length.csv")
    assert {"loss", "seed", "passes", "precision", "recall", "dice", "iou", "fp_far_5px_share",
            "fp_far_20px_share", "betti0_error_mean", "cldice_mean"} <= set(length.columns)
    assert length.groupby("loss").epochs.apply(list).to_dict() == {loss: [1, 2] for loss in ("bce", "dice", "distance")}
    n_train = json.loads((out / "03_train" / "dice-seed0" / "training_summary.json").read_text())["train_images"]
    assert length.passes.round(6).tolist() == [round(e * 16 / n_train, 6) for e in length.epochs]
    assert (length.best_epoch <= length.epochs).all() and (out / "training_length.png").is_file()
    final = length[length.epochs == 2].set_index("loss").dice  # the 2-epoch budget is the finished training itself
    for loss in ("bce", "dice", "distance"):
        scores = json.loads((out / "04_evaluate" / f"{loss}-seed0" / "scores.json").read_text())
        assert final[loss] == pytest.approx(scores["dice"], abs=1e-12)
        assert (out / "04_evaluate" / f"{loss}-epoch1-seed0" / "scores.json").is_file()
        assert not (out / "04_evaluate" / f"{loss}-epoch2-seed0").exists()  # no second evaluation of the same weights
    assert ablation.set_index("run").loc["distance_alpha2", "alpha"] == 2.0
    assert ablation[["dice", "fp_far_20px_share", "cldice_mean"]].apply(lambda c: c.between(0, 1)).all().all()
    trained = json.loads((out / "checkpoints" / "distance_diagonal-seed0" / "parameters.json").read_text())
    assert trained["NORMALIZATION"] == "diagonal" and trained["LOSS"] == "distance"
    assert json.loads((out / "checkpoints" / "boundary-seed0" / "parameters.json").read_text())["LOSS"] == "boundary"
    # notebook 06 (generalization summary) over this finished study
    summary = subprocess.run([sys.executable, "-m", "crack_utils.generalization", "--configs", "configs/tiny.yaml",
                              "--summary-only", "--name", "tiny_generalization", "--no-progress"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert summary.returncode == 0, summary.stdout[-3000:] + summary.stderr[-3000:]
    gen_out = REPO / "results" / "tiny_generalization"
    table = pd.read_csv(gen_out / "generalization.csv")
    assert table.loss.tolist() == ["bce", "dice", "distance"] and set(table.held_out) == {"in-distribution"}
    assert (table.n_test == len(manifest[manifest.split == "test"])).all()
    paired = pd.read_csv(gen_out / "generalization_paired.csv")
    assert paired.comparison.tolist() == ["distance - bce", "distance - dice"] * 2
    assert paired.metric.tolist() == ["per-image dice"] * 2 + ["per-image betti0_error"] * 2
    assert (gen_out / "generalization.png").is_file() and (gen_out / "06_generalization" / "06_generalization.html").is_file()
    assert (gen_out / "generalization_summary.md").read_text().count("| in-distribution |") == 1
    assert not str(REPO) in (gen_out / "06_generalization" / "06_generalization.ipynb").read_text()
    assert "read from 01_data/prepared.npz" in (out / "05_report" / "05_make_figures.ipynb").read_text()
    # notebook 05 reruns from committed files alone: without the (git-ignored) prepared arrays it reads the
    # compact test split it wrote, and the predictions; the tables come out the same
    prepared = out / "01_data" / "prepared.npz"
    before = {name: (out / name).read_bytes() for name in ("table1.csv", "fp_distances.csv", "claims_summary.csv")}
    prepared.rename(prepared.with_suffix(".away"))
    try:
        rerun = run_pipeline("configs/tiny.yaml", "--stages", "report", "--force", "report")
    finally:
        prepared.with_suffix(".away").rename(prepared)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "(1 runs executed, 0 up to date)" in rerun.stdout
    assert {name: (out / name).read_bytes() for name in before} == before
    assert "read from 05_report/test_split.npz" in (out / "05_report" / "05_make_figures.ipynb").read_text()
    assert (out / "figure2.png").is_file()


def test_the_generalization_summary_has_a_row_per_held_out_set_with_mean_sd_over_seeds():
    from crack_utils import generalization

    commits = {("gaps", 2): "bbbbbbbbbb, cccccccccc", "cfd": generalization.NOT_RECORDED}
    rows = [{"held_out": held_out, "loss": loss, "seed": seed, "n_test": 10, "dice": dice, "fp_far_20px_share": 0.5,
             "betti0_error_mean": 1.0, "cldice_mean": 0.25,
             "trained_at": commits.get((held_out, seed), commits.get(held_out, "aaaaaaaaaa")),
             "trained_on": "AMD EPYC (AVX2)" if held_out == "cfd" else "Xeon (AVX512)",
             "trained_in": "bf16 autocast" if (held_out, seed) == ("gaps", 1) else "fp32", "precision": 0.5}
            for held_out, losses in {"gaps": {"dice": [0.4, 0.6, 0.5], "distance": [0.3, 0.3, 0.3]},
                                     "cfd": {"dice": [0.2], "distance": [0.1]}}.items()
            for loss, dices in losses.items() for seed, dice in enumerate(dices)]
    paired = pd.DataFrame([
        {"held_out": "gaps", "comparison": "distance - dice", "metric": "per-image dice", "mean_diff": -0.2,
         "ci_low": -0.25, "ci_high": -0.1, "p_seeds": 0.012, "n_seeds": 3, "seeds_agree": "3 of 3", "evidence": "supported"},
        {"held_out": "cfd", "comparison": "distance - dice", "metric": "per-image dice", "mean_diff": -0.1,
         "ci_low": float("nan"), "ci_high": float("nan"), "p_seeds": float("nan"), "n_seeds": 1, "seeds_agree": "1 of 1",
         "evidence": "one training"},
        {"held_out": "gaps", "comparison": "distance - dice", "metric": "per-image betti0_error", "mean_diff": -0.5,
         "ci_low": -0.9, "ci_high": -0.2, "p_seeds": 0.03, "n_seeds": 3, "seeds_agree": "3 of 3", "evidence": "supported"},
        {"held_out": "cfd", "comparison": "distance - dice", "metric": "per-image betti0_error", "mean_diff": 0.25,
         "ci_low": float("nan"), "ci_high": float("nan"), "p_seeds": float("nan"), "n_seeds": 1, "seeds_agree": "1 of 1",
         "evidence": "one training"}])
    summary = generalization.generalization_summary(pd.DataFrame(rows), paired).set_index("held_out")
    assert list(summary.index) == ["cfd", "gaps"] and summary.loc["gaps", "seeds"] == 3
    assert summary.loc["gaps", "trained at"] == "aaaaaaaaaa, bbbbbbbbbb, cccccccccc"
    assert summary.loc["cfd", "trained at"] == "not recorded"
    assert summary.loc["gaps", "trained on"] == "Xeon (AVX512)" and summary.loc["cfd", "trained on"] == "AMD EPYC (AVX2)"
    assert summary.loc["gaps", "trained in"] == "bf16 autocast, fp32" and summary.loc["cfd", "trained in"] == "fp32"
    assert summary.loc["gaps", "pooled Dice (dice / distance)"] == "0.500 ± 0.100 / 0.300 ± 0.000"
    assert summary.loc["cfd", "pooled Dice (dice / distance)"] == "0.200 / 0.100"  # one seed: no sd
    assert summary.loc["gaps", "mean Betti-0 error (dice / distance)"] == "1.00 ± 0.00 / 1.00 ± 0.00"
    assert summary.loc["gaps", "distance - dice, per-image dice"] == "-0.200 [-0.250, -0.100], 3 of 3 seeds, p = 0.012"
    assert summary.loc["cfd", "distance - dice, per-image dice"] == "-0.100 (one training)"
    assert summary.loc["gaps", "distance - dice, per-image betti0_error"] == "-0.500 [-0.900, -0.200], 3 of 3 seeds, p = 0.03"
    markdown = generalization.summary_markdown(summary.reset_index()).splitlines()
    assert markdown[0].startswith("| held_out | test images | seeds | trained at | trained on | trained in | pooled Dice")
    assert markdown[1].count("---") == 12
    assert markdown[2].startswith("| cfd | 10 | 1 | not recorded | AMD EPYC (AVX2) | fp32 | 0.200 / 0.100 |")
    assert len(markdown) == 4


def test_trained_at_names_the_commits_that_trained_the_weights(tmp_path):
    """A training resumed at another commit names both segments' commits, not the rerun's; a training
    without metadata is "not recorded"."""
    import dataclasses

    from crack_utils import generalization
    from crack_utils.training_records import TrainingSummary

    run = tmp_path / "03_train" / "dice-seed1"
    run.mkdir(parents=True)
    (run / "run_metadata.json").write_text(json.dumps({
        "git": {"commit": "f" * 40, "dirty": False},
        "weights_trained_by": [{"git": {"commit": "1" * 40, "dirty": False}},
                               {"git": {"commit": "2" * 40, "dirty": True}}]}))
    assert generalization.trained_at(tmp_path, "dice", 1) == "1111111111, 2222222222+dirty"
    assert generalization.trained_at(tmp_path, "dice", 0) == generalization.NOT_RECORDED
    assert generalization.trained_precision(tmp_path, "dice", 1) == generalization.NOT_RECORDED
    summary = TrainingSummary(loss="dice", seed=1, epochs=3, device="cpu", precision="bf16 autocast",
                              best_val_dice=0.5, best_epoch=3, train_images=100, images_per_epoch=100, passes=3.0,
                              image_size=128, batch_size=25, lr=5e-4, lr_schedule="constant", plateau=False)
    (run / "training_summary.json").write_text(json.dumps(dataclasses.asdict(summary)))
    assert generalization.trained_precision(tmp_path, "dice", 1) == "bf16 autocast"


def test_generalization_summary_names_a_missing_study(tmp_path):
    config = tmp_path / "never_run_study.yaml"
    config.write_text("description: never run\n")
    result = subprocess.run([sys.executable, "-m", "crack_utils.generalization", "--configs", str(config),
                             "--summary-only", "--name", "tiny_missing"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "results/never_run_study" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.notebooks(seconds=37)
def test_failing_cell_names_notebook_and_keeps_earlier_results(tmp_path):
    name = "tiny-broken"
    good = tmp_path / f"{name}.yaml"
    good.write_text((REPO / "configs" / "tiny.yaml").read_text())
    first = run_pipeline(good, "--stages", "data")
    assert first.returncode == 0
    assert f"results in results/{name}/ (no report page: the report stage has not run)" in first.stdout
    manifest = REPO / "results" / name / "01_data" / "manifest.csv"
    before = manifest.read_bytes()
    bad = tmp_path / "bad" / f"{name}.yaml"
    bad.parent.mkdir()
    (tmp_path / "no-datasets-here").mkdir()  # exists (config checks pass) but holds no dataset folder
    bad.write_text(good.read_text().replace("source: synthetic", f"source: folder\n  root: {tmp_path / 'no-datasets-here'}")
                   .replace("evaluation: {extra_folder", "# evaluation: {extra_folder"))
    result = run_pipeline(bad, "--stages", "data")
    assert result.returncode == 1
    assert "01_clean_data.ipynb failed in cell" in result.stderr and "DatasetError" in result.stderr
    assert "no-datasets-here" in result.stderr
    assert "Traceback" not in result.stderr
    assert manifest.read_bytes() == before  # the earlier successful run is untouched
    assert (REPO / "results" / name / "01_data.failed").is_dir()


def test_unknown_config_key_is_a_one_paragraph_error(tmp_path):
    (tmp_path / "typo.yaml").write_text("trainig: {epochs: 1}\n")
    result = run_pipeline(tmp_path / "typo.yaml")
    assert result.returncode == 1
    assert "unknown key 'trainig'" in result.stderr and "training" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.notebooks(seconds=38)
def test_benchmark_prints_every_figure():
    # without prepared arrays (a new user's `make bench`): synthetic images; the GPU-script test covers --data
    result = subprocess.run([sys.executable, "-m", "crack_utils.tools.bench", "--steps", "1", "--batch-size", "2",
                             "--data", "no-such-folder"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("device:")
    expected = expected_bench_figures()
    tail = dict(line.split(": ", 1) for line in lines[-len(expected):])
    assert list(tail) == expected
    assert all(float(v) > 0 for v in tail.values())


def test_unknown_notebook_parameter_lists_the_valid_ones():
    from crack_utils.pipeline import Run, StudyError, check_parameters

    with pytest.raises(StudyError, match="has no parameter.*EPOKS.*declares: .*EPOCHS"):
        check_parameters(Run("train", "x", {"EPOKS": 1}), REPO)
    for run in plan(load_config(REPO / "configs" / "default.yaml")):
        check_parameters(run, REPO)  # every parameter the pipeline passes is declared


def test_unwritable_results_folder_is_a_clear_error(tmp_path):
    name = "tiny-unwritable"
    blocker = REPO / "results" / name
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("a file where the results folder should be")  # fails even for root
    try:
        (tmp_path / f"{name}.yaml").write_text("losses: [dice]\n")
        result = run_pipeline(tmp_path / f"{name}.yaml")
        assert result.returncode == 1
        assert f"cannot write results to {blocker}" in result.stderr and "Traceback" not in result.stderr
    finally:
        blocker.unlink()


def _resume_config(tmp_path, name):
    import yaml

    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["training"].update(epochs=4, snapshot_epochs=[])  # no snapshot evaluations: resuming is the point
    config["losses"] = ["distance"]
    for key in ("evaluation", "variants"):
        config.pop(key, None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def resume_reference(tmp_path) -> Path:
    """The uninterrupted reference study of both kill-and-resume tests, ``results/tiny-resume-ref-t<threads>``
    (its name holds the kernels' thread count, on which its floats depend: a reference left by a run with
    another count is not taken as up to date): run (or found up to date) under a file lock, because under
    pytest-xdist the two tests may run at the same time in two workers (a second pipeline on the same study
    would stop: crack_utils/study/lock.py). Returns its folder."""
    import fcntl

    env = resume_env()
    name = f"tiny-resume-ref-t{env['OMP_NUM_THREADS']}"
    (REPO / "results").mkdir(exist_ok=True)
    with open(REPO / "results" / f".{name}.test-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the other test's reference run has finished
        result = run_pipeline(_resume_config(tmp_path, name), env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return REPO / "results" / name


@pytest.mark.notebooks(seconds=160)
def test_killed_training_resumes_to_the_same_result(tmp_path):
    import os
    import signal
    import time

    import torch

    # uninterrupted reference
    reference = resume_reference(tmp_path)
    # the same study, killed (SIGKILL to the pipeline and its kernel) after its first checkpoint
    interrupted = _resume_config(tmp_path, "tiny-resume-kill")
    out = REPO / "results" / "tiny-resume-kill"
    last = out / "checkpoints" / "distance-seed0" / "last.pt"
    import shutil
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, "-m", "crack_utils.pipeline", "--config", str(interrupted), "--no-progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=resume_env())
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_done = torch.load(last, weights_only=False)["epoch"]
    assert epochs_done < 4, "training finished before it could be interrupted"
    assert not (out / "03_train" / "distance-seed0").exists()  # nothing half-written looks complete
    assert not (out / "table1.csv").exists()
    # rerunning the same command continues from the checkpoint ...
    result = run_pipeline(interrupted, env=resume_env())
    assert result.returncode == 0, result.stderr[-2000:]
    executed = (out / "03_train" / "distance-seed0" / "03_train_model.ipynb").read_text()
    assert "checkpoints: resume" in executed
    # ... and reaches the same final metrics as the uninterrupted run
    ref = json.loads((reference / "04_evaluate" / "distance-seed0" / "scores.json").read_text())
    got = json.loads((out / "04_evaluate" / "distance-seed0" / "scores.json").read_text())
    assert {k: got[k] for k in METRICS} == {k: ref[k] for k in METRICS}
    ref_table = pd.read_csv(reference / "table1.csv")
    pd.testing.assert_frame_equal(pd.read_csv(out / "table1.csv"), ref_table)


def test_generalization_notebook_defaults_summarize_the_committed_studies(tmp_path):
    # JupyterLab users run notebook 06 top to bottom: its defaults read the committed results/lodo_* folders
    import papermill

    from crack_utils.pipeline import kernel_name

    papermill.execute_notebook(str(REPO / "notebooks" / "06_generalization.ipynb"), str(tmp_path / "06.ipynb"),
                               parameters={"OUT_DIR": str(tmp_path / "out")}, kernel_name=kernel_name(),
                               cwd=str(REPO / "notebooks"), progress_bar=False)
    table = pd.read_csv(tmp_path / "out" / "generalization.csv")
    assert sorted(table.held_out.unique()) == ["aiglern_trimm_lmm", "alexdonchuk_coarse", "cfd", "crack500_lmm",
                                               "deepcrack_lmm", "gaps384_lmm"]
    committed = pd.read_csv(REPO / "results" / "lodo" / "generalization.csv")
    pd.testing.assert_frame_equal(table, committed)  # the committed summary is what the notebook produces


def test_the_generalization_run_hands_the_unfinished_studies_to_the_pipeline(monkeypatch):
    # A committed study whose config changed (lodo_*.yaml: seeds 0 -> 0-2) must be retrained by `make lodo`,
    # not skipped because its table1.csv exists; a study whose evaluations match its config is not handed on
    # (its git-ignored training runs would look "not run yet" in a fresh clone).
    from crack_utils import generalization, pipeline
    from crack_utils.study.config import load_config

    handed = []

    class Stop(Exception):
        pass

    def record(paths, **kwargs):
        handed.extend(paths)
        raise Stop

    monkeypatch.setattr(pipeline, "run_studies", record)
    monkeypatch.setattr(pipeline, "check_writable", lambda *a, **k: (_ for _ in ()).throw(Stop()))  # no notebook 06
    configs = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("lodo_*.yaml"))
    unfinished = [c for c in configs
                  if not generalization.summary_ready(REPO / "results" / load_config(REPO / c)["name"], load_config(REPO / c))]
    with pytest.raises(Stop):
        generalization.run(configs, progress=False)
    assert handed == unfinished
    handed.clear()
    with pytest.raises(Stop):  # --summary-only trains nothing and goes straight to notebook 06
        generalization.run(configs, summary_only=True, progress=False)
    assert handed == []


def test_a_study_is_ready_for_the_summary_when_its_evaluations_match_its_config(tmp_path):
    import json

    from crack_utils import generalization

    config = {"name": "s", "losses": ["bce", "dice"], "seeds": [0, 1], "training": {"epochs": 3}}
    study = tmp_path / "s"
    assert not generalization.summary_ready(study, config)  # never run
    study.mkdir()
    (study / "study_config.json").write_text(json.dumps(config))
    for loss in config["losses"]:
        for seed in config["seeds"]:
            (study / "04_evaluate" / f"{loss}-seed{seed}").mkdir(parents=True)
            (study / "04_evaluate" / f"{loss}-seed{seed}" / "scores.json").write_text("{}")
    assert generalization.summary_ready(study, config)
    assert not generalization.summary_ready(study, dict(config, seeds=[0, 1, 2]))  # the config asks for more
    assert not generalization.summary_ready(study, dict(config, training={"epochs": 4}))  # another protocol
    (study / "04_evaluate" / "dice-seed1" / "scores.json").unlink()
    assert not generalization.summary_ready(study, config)  # run part way
