"""Do the CPU kernels torch picks change a training's result? ``python -m crack_utils.tools.isa_check``.

The same seed trained on two 2-core machines gave pooled BCE Dice 0.708 vs 0.682, while two runs on one machine
are bit-identical. One suspected cause: torch and oneDNN choose kernels by the CPU's instruction set (AVX2,
AVX-512, ...), and kernels with other vector widths sum in another order, so the last bits of every
convolution differ; training amplifies such differences. Both choices can be capped on one machine with
environment variables (``ATEN_CPU_CAPABILITY`` for torch's own kernels, ``ONEDNN_MAX_CPU_ISA`` for oneDNN's
convolutions), so the cause can be tested here without a second machine.

Each setting trains the study's U-Net for ``steps`` Adam steps on fixed synthetic batches (same seed, fp32,
deterministic kernels, channels-last as in training on CPU) in a fresh process, then the final weights are compared with the native setting's:
``max_abs_weight_diff`` 0 means bit-identical. Row ``native (again)`` is the control: a second process with
the native kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

#: name -> environment overrides; "native" is what torch picks on this machine.
SETTINGS = {
    "native": {},
    "native (again)": {},
    "torch kernels capped at default (no AVX)": {"ATEN_CPU_CAPABILITY": "default"},
    "oneDNN capped at SSE4.1": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def train_steps(out: Path, steps: int, size: int, batch: int, seed: int = 0) -> None:
    """Train ``steps`` Adam steps (BCE) on fixed synthetic batches; save weights and the loss trace to ``out``."""
    import torch

    from crack_utils import losses, model as models, run_metadata, synthetic
    from crack_utils.preprocess import resize_image, resize_mask
    from crack_utils.paper import LR
    from crack_utils.training import seed_everything, train_step

    torch.set_num_threads(int(os.environ.get("ISA_CHECK_THREADS", torch.get_num_threads())))
    seed_everything(seed)
    pairs = [synthetic.generate_pair(seed + i, size=2 * size) for i in range(batch)]
    x = torch.from_numpy(np.stack([resize_image(p[0], size) for p in pairs]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.stack([resize_mask(p[1] > 0, size) for p in pairs]).astype(np.float32))[:, None]
    net = models.build_model().to(memory_format=torch.channels_last)  # as training.train lays it out on CPU
    x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = losses.make_loss("bce")
    trace = []
    net.train()
    for _ in range(steps):
        trace.append(float(train_step(net, opt, loss_fn, x, y, None)))
    weights = torch.cat([p.detach().flatten() for p in net.parameters()]).numpy()
    np.save(out / "weights.npy", weights)
    (out / "run.json").write_text(json.dumps({"loss": trace, "cpu_isa": run_metadata.device_description()["cpu_isa"]}))


def compare(steps: int = 20, size: int = 64, batch: int = 8, settings: dict | None = None) -> pd.DataFrame:
    """One row per setting: the ISA torch reported, |first-step loss - native's| (last-bit rounding is ~1e-7;
    more means the forward pass itself differs, e.g. other dropout masks), the final loss, max |weight - native
    weight|, and the first step whose loss differs from the native run's (-1: none)."""
    settings = SETTINGS if settings is None else settings
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in settings.items():
            out = Path(tmp) / f"run{len(runs)}"
            out.mkdir()
            code = (f"from pathlib import Path; from crack_utils.tools.isa_check import train_steps; "
                    f"train_steps(Path({str(out)!r}), {steps}, {size}, {batch})")
            done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **overrides},
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"setting {name!r} failed:\n{done.stderr[-2000:]}")
            runs[name] = (np.load(out / "weights.npy"), json.loads((out / "run.json").read_text()))
    native_w, native = runs[next(iter(settings))]
    rows = []
    for name, (w, run) in runs.items():
        differs = [i for i, (a, b) in enumerate(zip(run["loss"], native["loss"])) if a != b]
        rows.append({"setting": name, "cpu_isa": run["cpu_isa"],
                     "first_loss_abs_diff": abs(run["loss"][0] - native["loss"][0]), "final_loss": run["loss"][-1],
                     "max_abs_weight_diff": float(np.abs(w - native_w).max()),
                     "first_step_loss_differs": differs[0] if differs else -1})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    table = compare(args.steps, args.size, args.batch)
    print(f"{args.steps} Adam steps, U-Net at {args.size} px, batch {args.batch}, same seed, one process per setting:")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
