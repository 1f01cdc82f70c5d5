"""Small helpers shared by the notebook tests (imported as ``from helpers import ...``; tests/ is on sys.path)."""
import os


def threads_env(threads: int) -> dict:
    """This process's environment with torch's and the BLAS libraries' thread pools set to ``threads``: kernels
    started with it compute float for float like a Dask worker given that many threads (results may depend on
    the thread count, not on who schedules the runs)."""
    n = str(max(1, threads))
    return dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)


def expected_bench_figures() -> list[str]:
    """The figures ``python -m crack_utils.bench`` prints, in order, on this machine (CPU-only ones not on CUDA)."""
    import torch

    from crack_utils.bench import FIGURES

    return [f for f in FIGURES if not (f.startswith("cpu_") and torch.cuda.is_available())]
