"""The one-call GPU script (scripts/gpu_paper.sh) run end to end on CPU with a tiny config, as on the GPU
machine: carried (compactly encoded) data decoded, benchmark, study on a local Dask cluster, results archive."""
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from crack_utils.paths import repo_root
from helpers import expected_bench_figures

REPO = repo_root()
pytestmark = pytest.mark.notebooks


def _script(config, out, **env):
    environ = dict(os.environ, OUT=str(out), PY=sys.executable, WORKERS="1", PER_GPU="1",
                   BENCH_ARGS="--steps 1 --batch-size 2", **env)
    return subprocess.run(["bash", "scripts/gpu_paper.sh", str(config)], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=1200)


@pytest.mark.notebooks(seconds=208)
def test_gpu_script_runs_the_whole_path_on_cpu(tmp_path):
    import shutil

    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["losses"], config["seeds"] = ["dice"], [0, 1]
    config["training"].update(epochs=1, snapshot_epochs=[])
    for key in ("evaluation", "variants"):
        config.pop(key, None)
    path = tmp_path / "tiny-gpu-script.yaml"
    path.write_text(yaml.safe_dump(config))
    study = REPO / "results" / "tiny-gpu-script"
    shutil.rmtree(study, ignore_errors=True)
    # where the data is (scripts/gpu_pack.sh): the data stage, then its arrays compactly encoded, in parts
    data = subprocess.run([sys.executable, "-m", "crack_utils.pipeline", "--config", str(path), "--stages", "data",
                           "--no-progress"], cwd=REPO, capture_output=True, text=True)
    assert data.returncode == 0, data.stdout[-2000:] + data.stderr[-2000:]
    carry = tmp_path / "carry"
    carry.mkdir()
    packed = subprocess.run([sys.executable, "-m", "crack_utils.tools.compact_data", "encode", str(study / "01_data"),
                             str(carry / "data.npz"), "--quality", "80"], cwd=REPO, capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr
    subprocess.run(["split", "-b", "20k", str(carry / "data.npz"), str(carry / "data.npz.part-")], check=True)
    (carry / "data.npz").unlink()
    (study / "01_data" / "prepared.npz").unlink()  # as on the GPU machine: the arrays arrive only as parts
    # seed 1's training fails (its checkpoint folder cannot be made): the study ends non-zero with seed 0
    # finished, as when the deadline stops it part way, and the script reports the seeds that finished
    (study / "checkpoints").mkdir()
    (study / "checkpoints" / "dice-seed1").write_text("a file where the checkpoint folder goes")
    # the one call on the GPU machine: decode, benchmark, the study on Dask, the archive
    # with a deadline, as on the lent machine: the throughput of 1 and 2 trainings at once, then the plan
    result = _script(path, tmp_path / "out", CARRY=str(carry), DEADLINE="3000", CONCURRENCY="1 2", CONC_SECONDS="1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (study / "01_data" / "prepared.npz").is_file()
    assert "01_clean_data.ipynb" not in result.stdout  # the data stage was not rerun
    call = study / "gpu_call"  # the call's own record, archived with the study
    assert "decoded into results/tiny-gpu-script/01_data" in (call / "data.txt").read_text()
    assert len(list((tmp_path / "out").iterdir())) <= 8  # what a lent machine returns at most
    lines = (tmp_path / "out" / "bench.txt").read_text().splitlines()  # stdout and stderr (2>&1 in the script)
    assert any(line.startswith("data: prepared arrays in results/tiny-gpu-script/01_data") for line in lines)
    from crack_utils.tools.bench import FIGURES

    expected = expected_bench_figures()
    figures = dict(line.split(": ", 1) for line in lines if line.split(": ", 1)[0] in FIGURES)
    assert list(figures) == expected and all(float(v) > 0 for v in figures.values())
    assert "study_seconds:" in (tmp_path / "out" / "wall.txt").read_text()
    concurrency = dict(line.split(": ", 1) for line in (tmp_path / "out" / "concurrency.txt").read_text().splitlines()
                       if line.startswith("concurrent_train_img_per_s_"))
    assert list(concurrency) == ["concurrent_train_img_per_s_k1", "concurrent_train_img_per_s_k2"]
    assert all(float(v) > 0 for v in concurrency.values())
    plan = (tmp_path / "out" / "plan.txt").read_text()
    assert plan.startswith("plan: seeds [0, 1] x 1 losses at 1 epochs"), plan  # the tiny study fits as it is
    assert yaml.safe_load((call / "config-run.yaml").read_text())["name"] == "tiny-gpu-script"
    # the stop path: the study failed on seed 1, the report covers seed 0, the script succeeds
    study_log = (tmp_path / "out" / "study.log").read_text()
    assert "tiny-gpu-script/03_train/dice-seed1: notebooks/03_train_model.ipynb failed" in study_log, study_log[-3000:]
    assert "seeds with every loss evaluated: [0]" in plan
    assert yaml.safe_load((call / "config-report.yaml").read_text())["seeds"] == [0]
    assert "report_seconds:" in (tmp_path / "out" / "wall.txt").read_text()
    import pandas as pd

    assert set(pd.read_csv(study / "table1.csv").n_seeds) == {1}
    assert sorted(pd.read_csv(study / "05_report" / "scores.csv").seed.unique()) == [0]
    with tarfile.open(tmp_path / "out" / "results.tgz") as archive:
        names = archive.getnames()
    assert "results/tiny-gpu-script/table1.csv" in names
    assert {"results/tiny-gpu-script/gpu_call/" + f for f in ("concurrency.json", "plan.env", "study.log")} <= set(names)
    assert not any("checkpoints" in n or n.endswith(".html") for n in names)
    # the arrays stay behind; what notebook 05 reruns from comes back (it is committed)
    assert sorted(n.rsplit("/", 2)[-2] + "/" + n.rsplit("/", 1)[-1] for n in names if n.endswith(".npz")) == sorted(
        ["05_report/test_split.npz", "dice-seed0/predictions.npz"])
