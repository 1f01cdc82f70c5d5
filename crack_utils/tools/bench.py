"""Speed benchmark: ``python -m crack_utils.tools.bench`` (or ``make bench``).

Prints the device, threads and versions, then one ``name: value`` line per figure (the last lines):

* ``train_img_per_s_<loss>`` — training images/s (U-Net, batch 25, default encoder) per loss; this and the
  evaluation and FLOP figures use 128-px images, or the size of the prepared arrays given with ``--data``;
* ``distance_over_dice_step_ratio`` — time per training step with the Distance-based Loss, its distance
  maps included, over the time with Dice, measured interleaved in one run;
* ``loader_over_model_ratio`` — end-to-end training images/s (DataLoader, augmentation, distance maps)
  over model-only images/s on pre-made tensors;
* ``device_batches_img_per_s`` — augmented batches (distance maps included) made on the training device by
  :class:`~crack_utils.device_batches.DeviceBatches` (the GPU data path), no model;
  ``device_batches_over_model_ratio`` — end-to-end training images/s on that path over model-only;
* ``distance_maps_per_s_448`` and ``distance_maps_per_s_128``;
* ``eval_img_per_s``;
* ``cpu_bf16_over_fp32_step_ratio`` (CPU only) — fp32 time per training step over bf16-autocast time,
  interleaved: above 1, bf16 is faster on this CPU (see ``training.resolve_amp``);
* ``train_gflop_per_image`` — counted by torch's ``FlopCounterMode`` (forward and backward);
  ``train_gflop_per_s`` — that times the best training images/s; ``gemm_gflop_per_s`` — a large fp32 (or,
  with bf16 autocast on, bf16) matrix product, the practical peak of this device; ``train_over_gemm_flops_ratio``
  — how close the training step gets to it.

Real data: the prepared arrays of a study (``--data results/<name>/01_data``) when given and present,
otherwise synthetic pairs made on the fly. Speed targets live here, not in timed tests.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from crack_utils import augment, distance, losses, model as models, run_metadata, synthetic, training
from crack_utils.evaluation import predict_probabilities
from crack_utils.loader import CrackDataset
from crack_utils.paper import BATCH_SIZE, IMAGE_SIZE, LR, TABLE1_LOSSES
from crack_utils.preprocess import load_cache, resize_image, resize_mask
from crack_utils.study import layout

FIGURES = (*(f"train_img_per_s_{name}" for name in TABLE1_LOSSES),
           "distance_over_dice_step_ratio", "loader_over_model_ratio", "device_batches_img_per_s",
           "device_batches_over_model_ratio", "distance_maps_per_s_448",
           f"distance_maps_per_s_{IMAGE_SIZE}", "eval_img_per_s", "cpu_bf16_over_fp32_step_ratio", "train_gflop_per_image",
           "train_gflop_per_s", "gemm_gflop_per_s", "train_over_gemm_flops_ratio")


def synthetic_arrays(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic pairs at ``size`` px (every 7th crack-free): images (n, size, size, 3) uint8, masks
    (n, size, size) uint8 in {0, 1}. What the benchmarks train on without a study's prepared arrays."""
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        image, mask, _ = synthetic.generate_pair(seed + i, size=192, crack_free=i % 7 == 0)
        images[i], masks[i] = resize_image(image, size), resize_mask(mask > 0, size)
    return images, masks


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def flop_figures(net, x, train_step, batch_size: int, img_per_s: float, dev, amp: bool) -> dict[str, float]:
    """Counted FLOPs of one training step per image, the achieved FLOP/s and a GEMM reference (see the
    module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step()
    per_image = counter.get_total_flops() / batch_size / 1e9
    dtype = torch.bfloat16 if amp else torch.float32
    n = 2048
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b
    _sync(dev)
    gemm = 2 * n ** 3 / statistics.median(_timed(lambda: (a @ b, _sync(dev)), 3)) / 1e9
    return {"train_gflop_per_image": per_image, "train_gflop_per_s": per_image * img_per_s,
            "gemm_gflop_per_s": gemm, "train_over_gemm_flops_ratio": per_image * img_per_s / gemm}


def run(data_dir: str | None = None, steps: int = 4, batch_size: int = BATCH_SIZE, size: int = IMAGE_SIZE,
        encoder: str = models.DEFAULT_ENCODER, device: str = "auto", amp: bool | str = "auto") -> dict[str, float]:
    """Measure every figure; returns ``{name: value}`` (see the module docstring). ``amp``: bf16 autocast,
    ``"auto"`` by the training's rule (:func:`crack_utils.training.resolve_amp`)."""
    dev = models.pick_device(device)
    amp = training.resolve_amp(amp, dev)
    torch.manual_seed(0)
    if data_dir and (Path(data_dir) / layout.PREPARED_ARRAYS).is_file():
        images, masks, _ = load_cache(Path(data_dir) / layout.PREPARED_ARRAYS)
        size = images.shape[1]  # the study's image size (a 64-px study's arrays would not fit 128-px inputs)
        source = f"prepared arrays in {data_dir}"
    else:
        images, masks = synthetic_arrays(4 * batch_size, size)
        source = "synthetic pairs"
    images, masks = images[: 8 * batch_size], masks[: 8 * batch_size]
    print(f"data: {source}, {len(images)} images of {images.shape[1]} px", flush=True)

    net = models.build_model(encoder).to(dev)
    channels_last = dev.type in training.CHANNELS_LAST_DEVICES  # laid out as training.train lays it out
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    x = torch.randn(batch_size, 3, size, size, device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y_np = masks[:batch_size]
    y = torch.from_numpy(y_np[:, None].astype(np.float32)).to(dev)
    dist = torch.from_numpy(distance.distance_maps(y_np)[:, None]).to(dev)
    loss_fns = {name: losses.make_loss(name) for name in TABLE1_LOSSES}

    def step(loss_name: str, with_maps: bool = False, bf16: bool = amp):
        d = torch.from_numpy(distance.distance_maps(y_np)[:, None]).to(dev) if with_maps else dist
        training.train_step(net, opt, loss_fns[loss_name], x, y, d, amp=bf16)
        _sync(dev)

    net.train()
    for name in TABLE1_LOSSES:  # warm-up: allocator, kernels, caches
        step(name)
    results: dict[str, float] = {}
    for name in TABLE1_LOSSES:
        times = _timed(lambda: step(name), steps)
        results[f"train_img_per_s_{name}"] = batch_size / statistics.median(times)

    ratios = []
    for _ in range(3 * steps):  # interleaved pairs, so drift and noise hit both alike
        dice_t = _timed(lambda: step("dice"), 1)[0]
        dist_t = _timed(lambda: step("distance", with_maps=True), 1)[0]
        ratios.append(dist_t / dice_t)
    results["distance_over_dice_step_ratio"] = statistics.median(ratios)

    if dev.type == "cpu":
        step("distance", bf16=True)  # warm-up of the bf16 kernels
        precision_ratios = []
        for _ in range(steps):
            fp32_t = _timed(lambda: step("distance", bf16=False), 1)[0]
            bf16_t = _timed(lambda: step("distance", bf16=True), 1)[0]
            precision_ratios.append(fp32_t / bf16_t)
        results["cpu_bf16_over_fp32_step_ratio"] = statistics.median(precision_ratios)
    results.update(flop_figures(net, x, lambda: step("distance"), batch_size,
                                max(results[f"train_img_per_s_{n}"] for n in TABLE1_LOSSES), dev, amp))

    dataset = CrackDataset(images, masks, augment=augment.training_augmentation(seed=0))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    fn = loss_fns["distance"]

    def train_on(batches_of, batches: int, train: bool = True):
        """Images/s over the first ``batches`` (image, mask, map) batches of ``batches_of``, with a training
        step on each (``train``) or only making them."""
        seen, t0 = 0, time.perf_counter()
        for i, (image, mask, d) in enumerate(batches_of):
            if i >= batches:
                break
            if train:
                training.train_step(net, opt, fn, image.to(dev), mask.to(dev), d.to(dev), amp=amp,
                                    channels_last=channels_last)
            seen += len(image)
        _sync(dev)
        return seen / (time.perf_counter() - t0)

    def end_to_end(batches: int):
        return train_on(loader, batches)

    loader_ratios = []
    for _ in range(3):  # interleaved blocks of `steps` batches each
        model_only = steps * batch_size / sum(_timed(lambda: step("distance"), steps))
        loader_ratios.append(end_to_end(steps) / model_only)
    results["loader_over_model_ratio"] = statistics.median(loader_ratios)

    # the GPU data path (training.batches "device"): batches made on the training device
    from crack_utils.device_batches import DeviceBatches

    on_device = DeviceBatches(images, masks, batch_size, device=dev, seed=0)

    def device_batches(batches: int, train: bool):
        return train_on(on_device, batches, train)

    device_batches(1, train=False)  # warm-up
    results["device_batches_img_per_s"] = statistics.median(device_batches(steps, train=False) for _ in range(3))
    device_ratios = []
    for _ in range(3):
        model_only = steps * batch_size / sum(_timed(lambda: step("distance"), steps))
        device_ratios.append(device_batches(steps, train=True) / model_only)
    results["device_batches_over_model_ratio"] = statistics.median(device_ratios)

    for side in (448, IMAGE_SIZE):
        mask_stack = np.stack([resize_mask(m, side) for m in masks[:20]]) if side != masks.shape[1] else masks[:20]
        t = statistics.median(_timed(lambda: distance.distance_maps(mask_stack), 3))
        results[f"distance_maps_per_s_{side}"] = len(mask_stack) / t

    n_eval = min(len(images), 4 * batch_size)
    predict_probabilities(net, images[:batch_size], batch_size=batch_size, device=dev, progress=False)
    t = statistics.median(_timed(lambda: predict_probabilities(net, images[:n_eval], batch_size=batch_size,
                                                                device=dev, progress=False), 2))
    results["eval_img_per_s"] = n_eval / t
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=layout.data_dir(layout.study_dir("seeds")).as_posix(),
                        help="prepared arrays of a study (falls back to synthetic pairs when absent)")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per figure")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--encoder", default=models.DEFAULT_ENCODER)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", nargs="?", const="on", default="auto", type=training.parse_amp,
                        help="bf16 autocast: auto (the training's rule: on CUDA or a CPU with native bf16; the "
                             "default), on (a bare --amp) or off")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = run_metadata.device_description()
    versions = run_metadata.package_versions(("torch", "segmentation-models-pytorch", "albumentations", "scipy"))
    print(f"device: {info.get('gpu', 'cpu')} | cpu {info['cpu_model']} ({info['cpu_isa']}, native bf16 "
          f"{info['cpu_native_bf16']}) | torch threads {info['torch_threads']} | cpus {info['cpu_count']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"settings: encoder {args.encoder}, batch {args.batch_size}, steps {args.steps}, amp {args.amp} "
          "(image size: the data line below)", flush=True)
    results = run(args.data, steps=args.steps, batch_size=args.batch_size, encoder=args.encoder,
                  device=args.device, amp=args.amp)
    for name in FIGURES:
        if name in results:
            print(f"{name}: {results[name]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
