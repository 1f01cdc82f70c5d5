"""Run metadata: what produced a result (commit, versions, device, parameters, wall time)."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

PACKAGES = ("torch", "torchvision", "segmentation-models-pytorch", "albumentations", "numpy", "scipy",
            "pandas", "matplotlib", "seaborn", "papermill", "timm")


def git_state(repo: str | Path = ".") -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository at ``repo``.

    ``dirty`` means tracked code, notebooks or configs differ from the commit; changes under ``results/``
    do not count (a study rewrites its own committed results while it runs)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)results"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions(names=PACKAGES) -> dict:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: Environment variables that choose the CPU kernels or their arithmetic: instruction-set caps for torch's
#: own kernels, oneDNN's convolutions (``DNNL_`` is oneDNN's older name) and MKL; oneDNN's fp32 math mode
#: (``BF16`` lets fp32 convolutions run in bf16); MKL's reproducibility mode. Set, they change a
#: training's last bits like another CPU would (``python -m crack_utils.tools.isa_check``), so the metadata
#: records them.
KERNEL_ENV_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
                        "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def native_cpu_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN's check: AVX-512 BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_description() -> dict:
    """Threads, CPUs, the CPU model and the instruction set torch uses (``cpu_isa``: kernels, and hence the
    last digits of results, differ between e.g. AVX2 and AVX-512 machines), the kernel settings in the
    environment (``cpu_kernel_env``, :data:`KERNEL_ENV_VARIABLES`; ``{}`` when none), native bf16, GPU name."""
    import torch

    info = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
            "cpu_model": cpu_model(), "cpu_isa": torch.backends.cpu.get_cpu_capability(),
            "cpu_kernel_env": {name: os.environ[name] for name in KERNEL_ENV_VARIABLES if name in os.environ},
            "cpu_native_bf16": native_cpu_bf16()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["platform"] = platform.platform()
    info["python"] = sys.version.split()[0]
    return info


def collect(parameters: dict, wall_seconds: float, started: datetime, repo: str | Path = ".") -> dict:
    """The metadata dict written as ``run_metadata.json`` next to each executed notebook."""
    return {
        "started": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(wall_seconds, 2),
        "git": git_state(repo),
        "packages": package_versions(),
        "device": device_description(),
        "parameters": parameters,
    }


def write(path: str | Path, metadata: dict) -> None:
    Path(path).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
