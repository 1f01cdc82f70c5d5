"""Small helpers shared by the notebook tests (imported as ``from helpers import ...``; tests/ is on sys.path)."""
import os


def threads_env(threads: int) -> dict:
    """This process's environment with torch's and the BLAS libraries' thread pools set to ``threads``: kernels
    started with it compute float for float like a Dask worker given that many threads (results may depend on
    the thread count, not on who schedules the runs)."""
    from crack_utils.study.executor import thread_settings

    return {**os.environ, **thread_settings(threads)}


def expected_bench_figures() -> list[str]:
    """The figures ``python -m crack_utils.tools.bench`` prints, in order, on this machine (CPU-only ones not on CUDA)."""
    import torch

    from crack_utils.tools.bench import FIGURES

    return [f for f in FIGURES if not (f.startswith("cpu_") and torch.cuda.is_available())]


def share_cores_among_xdist_workers(environ=os.environ) -> int | None:
    """Under pytest-xdist (``make test`` runs ``-n 2``), this worker -- and every kernel, pipeline and Dask
    worker it starts, which inherit its environment -- gets ``cores // workers`` torch/BLAS threads, unless the
    caller set ``OMP_NUM_THREADS``. Without it two workers run 2-thread kernels on 2 cores, and oversubscribed
    OpenMP pools spin against each other: a 2-epoch tiny training took 22 s instead of 4 s beside another
    2-thread job (docs/testing.md). Tests that compare floats across processes still set their thread counts
    explicitly (:func:`threads_env`). Returns the thread count set, or None where nothing was changed."""
    workers = int(environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 1 or "OMP_NUM_THREADS" in environ:
        return None
    from crack_utils.study.executor import thread_settings, worker_threads

    threads = worker_threads(workers, environ)  # cores // workers (no OMP_NUM_THREADS limit is set here)
    environ.update(thread_settings(threads))
    import torch

    torch.set_num_threads(threads)
    return threads


def training_parameters(**overrides) -> dict:
    """A complete set of notebook 03's parameters (crack_utils.training_records.TrainingParameters), with
    ``overrides``."""
    base = {"DATA_DIR": "results/t/01_data", "CHECKPOINT_DIR": "results/t/checkpoints/dice-seed0", "LOSS": "dice",
            "LOSS_OPTIONS": {}, "SEED": 0, "ENCODER": "resnet18", "ENCODER_WEIGHTS": None, "DROPOUT": 0.3,
            "DECODER_CHANNELS": [8, 8, 8, 8, 8], "CRACK_PRIOR": None, "EPOCHS": 2, "BATCH_SIZE": 2, "LR": 1,
            "LR_SCHEDULE": "constant", "SAMPLES_PER_EPOCH": None, "NUM_WORKERS": 0, "DEVICE": "cpu",
            "DETERMINISTIC": True, "AMP": False, "NORMALIZATION": "radius", "RADIUS": 20.0, "SNAPSHOT_EPOCHS": [],
            "DATA_FINGERPRINT": "abc", "BATCHES": "auto"}
    return {**base, **overrides}
