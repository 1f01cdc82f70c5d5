"""K trainings at once on one device: aggregate training images/s (``python -m crack_utils.tools.concurrency``).

For each K (default 1, 2, 4, 8) K child processes each run the study's training step as
:func:`crack_utils.training.train` runs it — the U-Net (batch 25, channels-last), batches made on the device by
:class:`~crack_utils.device_batches.DeviceBatches` (augmentation and distance maps included), the
Distance-based Loss, Adam, bf16 autocast by the training's rule (``--amp auto``, on or off), the loss read every
:data:`~crack_utils.training.SYNC_EVERY` steps on CUDA — on the same device at once, as ``--per-gpu K`` does in
a study. Each child warms up (cuDNN's autotuning, the allocator), says it is ready and waits; when all are
ready they start together, train for ``--seconds`` and report the images they trained and when they started
and stopped. The aggregate is all their images over the span from the first start to the last stop.

Prints one ``concurrent_train_img_per_s_k<K>: value`` line per K and ``concurrent_speedup_k<K>: value`` (over
K = 1); ``--json FILE`` writes ``{"device": ..., "img_per_s": {K: value}}``, which
:mod:`crack_utils.tools.budget` reads to plan a study that fits a wall-time budget.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from crack_utils import training
from crack_utils.paper import BATCH_SIZE, IMAGE_SIZE, LR

DEFAULT_KS = (1, 2, 4, 8)
READY = "ready"


def child(data_dir: str | None, seconds: float, device: str, amp: bool | str, batch_size: int, size: int,
          warmup_steps: int, threads: int) -> dict:
    """One training process: warm up, print :data:`READY`, wait for a line on stdin, train for ``seconds``;
    returns ``{"images", "start", "end"}`` (wall-clock times, seconds since the epoch)."""
    import torch

    from crack_utils import losses, model as models
    from crack_utils.device_batches import DeviceBatches

    torch.set_num_threads(threads)
    dev = models.pick_device(device)
    amp = training.resolve_amp(amp, dev)
    images, masks = training_arrays(data_dir, size)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    net = models.build_model().to(dev)
    channels_last = dev.type in training.CHANNELS_LAST_DEVICES
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = losses.make_loss("distance")
    batches = DeviceBatches(images, masks, batch_size, device=dev, seed=0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def epochs():
        epoch = 0
        while True:
            batches.set_epoch(epoch)
            yield from batches
            epoch += 1

    stream = epochs()
    loss_sum = training.LossSum(dev, every=1 if dev.type == "cpu" else training.SYNC_EVERY)

    def read_loss(loss, n: int) -> None:  # as the training reads it: every SYNC_EVERY steps on the GPU
        if loss_sum.add(loss, n):
            loss_sum.mean(0, Path("none"))

    def step() -> int:
        image, mask, dist = next(stream)
        training.train_step(net, opt, loss_fn, image, mask, dist, amp=amp, channels_last=channels_last,
                            before_backward=lambda loss: read_loss(loss, len(image)))
        return len(image)

    for _ in range(warmup_steps):
        step()
    sync()
    print(READY, flush=True)
    sys.stdin.readline()
    start, n = time.time(), 0
    while time.time() - start < seconds:
        n += step()
    sync()
    return {"images": n, "start": start, "end": time.time()}


def training_arrays(data_dir: str | None, size: int, n: int = 1000):
    """Up to ``n`` prepared image/mask pairs of a study (``data_dir/prepared.npz``) or, without one, synthetic
    pairs of ``size`` px. The content does not change the cost of a step."""
    from crack_utils.tools.bench import synthetic_arrays
    from crack_utils.preprocess import load_cache
    from crack_utils.study.layout import PREPARED_ARRAYS

    if data_dir and (Path(data_dir) / PREPARED_ARRAYS).is_file():
        images, masks, _ = load_cache(Path(data_dir) / PREPARED_ARRAYS)
        return images[:n], masks[:n]
    return synthetic_arrays(min(n, 100), size)


def aggregate(reports: list[dict]) -> float:
    """Images/s of several children together: all their images over the span from the first start to the
    last end."""
    if not reports:
        raise ValueError("no child reported")
    span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    if span <= 0:
        raise ValueError(f"children reported an empty time span ({span} s)")
    return sum(r["images"] for r in reports) / span


def measure(k: int, child_args: list[str], timeout: float = 300.0) -> float:
    """Start ``k`` children (``python -m crack_utils.tools.concurrency --child ...``), start them together once all
    are warm, and return their aggregate images/s (:func:`aggregate`). A child that fails raises
    RuntimeError with the end of its stderr (kept in a file, so a chatty child never blocks on a full pipe)."""
    import tempfile

    command = [sys.executable, "-m", "crack_utils.tools.concurrency", "--child", *child_args]
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(Path(tmp) / f"child{i}.log", "w+") for i in range(k)]
        procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
                 for log in logs]

        def stderr_of(i: int) -> str:
            logs[i].flush()
            return (Path(tmp) / f"child{i}.log").read_text()[-3000:]

        try:
            for i, proc in enumerate(procs):
                for line in iter(proc.stdout.readline, ""):  # "": the child closed its output (it ended)
                    if line.strip() == READY:
                        break
                else:
                    proc.wait(timeout=timeout)
                    raise RuntimeError(f"a training process did not get ready (exit {proc.returncode}):\n{stderr_of(i)}")
            for proc in procs:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            reports = []
            for i, proc in enumerate(procs):
                out, _ = proc.communicate(timeout=timeout)
                if proc.returncode != 0:
                    raise RuntimeError(f"a training process failed (exit {proc.returncode}):\n{stderr_of(i)}")
                reports.append(json.loads(out.strip().splitlines()[-1]))
            return aggregate(reports)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for log in logs:
                log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.concurrency", description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS), help="trainings at once (default 1 2 4 8)")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per K (default 8)")
    parser.add_argument("--data", default=None, help="a study's prepared arrays (results/<name>/01_data); else synthetic")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", nargs="?", const="on", default="auto", type=training.parse_amp,
                        help="bf16 autocast: auto (the training's rule: on CUDA or a CPU with native bf16; the "
                             "default), on (a bare --amp) or off")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, help="image size of synthetic pairs")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        report = child(args.data, args.seconds, args.device, args.amp, args.batch_size, args.size,
                       args.warmup_steps, args.threads)
        print(json.dumps(report), flush=True)
        return 0
    if any(k < 1 for k in args.k):
        parser.error("--k values must be at least 1")
    from crack_utils import run_metadata

    device = run_metadata.device_description().get("gpu", "cpu")
    print(f"device: {device} | {args.seconds:g} s per K | amp {args.amp} | data {args.data or 'synthetic'}", flush=True)
    figures: dict[int, float] = {}
    failed: dict[int, str] = {}
    from crack_utils.study.executor import worker_threads

    for k in args.k:
        threads = worker_threads(k)  # as each of K local Dask workers gets: a share of the cores
        child_args = ["--seconds", str(args.seconds), "--device", args.device, "--batch-size", str(args.batch_size),
                      "--size", str(args.size), "--warmup-steps", str(args.warmup_steps), "--threads", str(threads),
                      *(["--data", args.data] if args.data else []),
                      "--amp", "auto" if args.amp == "auto" else ("on" if args.amp else "off")]
        try:
            figures[k] = measure(k, child_args)
        except RuntimeError as err:  # the other K still count: a plan can use what was measured
            failed[k] = str(err)
            print(f"K = {k} failed: {err}", file=sys.stderr, flush=True)
            continue
        print(f"concurrent_train_img_per_s_k{k}: {figures[k]:.1f}", flush=True)
        if args.json:  # after every K, so a run stopped part way keeps what it measured
            Path(args.json).write_text(json.dumps({"device": device, "img_per_s": figures}, indent=2) + "\n")
    if 1 in figures:
        for k, value in figures.items():
            print(f"concurrent_speedup_k{k}: {value / figures[1]:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
