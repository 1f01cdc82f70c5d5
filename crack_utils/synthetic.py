"""Seeded synthetic concrete-crack images, so a fresh machine can run the study without downloads.

Each image is a concrete-like texture (multi-scale grey noise, aggregate speckle, a lighting gradient and
sensor noise) with zero to two thin, elongated, branching cracks 1-5 px wide, and crack-like distractors
placed at least ``distractor_clearance`` px from every crack: dark stains, straight joints (long, uniform,
darker lines) and soft shadows. About ``crack_free_fraction`` of the images have no crack at all.

This data exists so the pipeline runs anywhere; it is **not** evidence for or against any loss.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from crack_utils.progress import progress_bar

GENERATOR_VERSION = 1


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(115, 175)
    img = np.full((size, size), base, dtype=np.float32)
    for sigma, amp in ((size / 6, 18), (size / 24, 9), (1.0, 7)):
        img += amp * ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma) * (sigma ** 0.5 if sigma > 1 else 1)
    speckle = rng.random((size, size)) < 0.015
    img -= 25 * ndimage.gaussian_filter(speckle.astype(np.float32), 0.8) * 4
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * math.pi)
    img += rng.uniform(10, 40) * ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle))
    return img


def _random_walk(rng: np.random.Generator, size: int, start=None, heading=None, length=None) -> np.ndarray:
    if start is None:
        start = rng.uniform(0.1 * size, 0.9 * size, 2)
    if heading is None:
        heading = rng.uniform(0, 2 * math.pi)
    if length is None:
        length = rng.uniform(0.6, 1.4) * size
    step, points, pos = 2.0, [np.array(start, float)], np.array(start, float)
    for _ in range(int(length / step)):
        heading += rng.normal(0, 0.3)
        pos = pos + step * np.array([math.cos(heading), math.sin(heading)])
        points.append(pos.copy())
    return np.array(points)


def _draw_crack(rng: np.random.Generator, size: int, mask: np.ndarray, depth: np.ndarray) -> None:
    trunk = _random_walk(rng, size)
    paths = [trunk]
    for _ in range(rng.integers(0, 3)):  # branches leave the trunk at a random point
        i = rng.integers(len(trunk) // 4, max(len(trunk) // 4 + 1, 3 * len(trunk) // 4))
        d = trunk[min(i + 1, len(trunk) - 1)] - trunk[i]
        heading = math.atan2(d[1], d[0]) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
        paths.append(_random_walk(rng, size, start=trunk[i], heading=heading, length=rng.uniform(0.2, 0.5) * size))
    for path in paths:
        width = int(rng.integers(1, 6))
        darkness = rng.uniform(45, 90)
        pts = np.round(path).astype(np.int32).reshape(-1, 1, 2)
        layer = np.zeros_like(mask)
        cv2.polylines(layer, [pts], isClosed=False, color=1, thickness=width, lineType=cv2.LINE_8)
        mask |= layer
        depth[:] = np.maximum(depth, layer * darkness)


def _draw_distractors(rng: np.random.Generator, size: int, img: np.ndarray, far: np.ndarray, clearance: float) -> list[str]:
    kinds = []
    for _ in range(rng.integers(1, 4)):
        kind = rng.choice(["stain", "joint", "shadow"])
        layer = np.zeros((size, size), np.float32)
        if kind == "stain":
            candidates = np.argwhere(far)
            if len(candidates) == 0:
                continue
            cy, cx = candidates[rng.integers(len(candidates))]
            r = rng.uniform(5, 14)
            cv2.ellipse(layer, (int(cx), int(cy)), (int(r), int(r * rng.uniform(0.4, 1.0))),
                        rng.uniform(0, 180), 0, 360, 1.0, -1)
            layer = ndimage.gaussian_filter(layer, 1.5) * rng.uniform(25, 55)
        elif kind == "joint":
            horizontal = rng.random() < 0.5
            pos = int(rng.uniform(0.1, 0.9) * size)
            width = int(rng.integers(2, 5))
            if horizontal:
                layer[pos:pos + width, :] = 1.0
            else:
                layer[:, pos:pos + width] = 1.0
            layer = ndimage.gaussian_filter(layer, 0.7) * rng.uniform(25, 50)
        else:
            yy, xx = np.mgrid[0:size, 0:size]
            a = rng.uniform(0, 2 * math.pi)
            edge = (xx - size / 2) * math.cos(a) + (yy - size / 2) * math.sin(a) - rng.uniform(0.1, 0.4) * size
            layer = (1 / (1 + np.exp(-edge / rng.uniform(3, 10)))).astype(np.float32) * rng.uniform(20, 40)
        if kind != "shadow":
            layer *= far  # never within `clearance` px of a crack
        img -= layer
        kinds.append(str(kind))
    return kinds


def generate_pair(seed: int, size: int = 192, crack_free: bool = False,
                  distractor_clearance: float = 12.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic pair from ``seed``: RGB uint8 image (size, size, 3), mask uint8 (size, size) in {0, 255}.

    Returns ``(image, mask, info)``; ``info`` records the distractor kinds. Same seed, same pair.
    """
    rng = np.random.default_rng(seed)
    img = _texture(rng, size)
    mask = np.zeros((size, size), np.uint8)
    depth = np.zeros((size, size), np.float32)
    if not crack_free:
        for _ in range(rng.integers(1, 3)):
            _draw_crack(rng, size, mask, depth)
    img -= ndimage.gaussian_filter(depth, 0.6)
    if mask.any():
        far = ndimage.distance_transform_edt(mask == 0) > distractor_clearance
    else:
        far = np.ones_like(mask, bool)
    kinds = _draw_distractors(rng, size, img, far, distractor_clearance)
    img += rng.normal(0, rng.uniform(2, 6), img.shape)
    grey = np.clip(img, 0, 255)
    tint = rng.uniform(0.95, 1.05, 3)
    rgb = np.clip(grey[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
    return rgb, (mask > 0).astype(np.uint8) * 255, {"distractors": "+".join(kinds)}


def generate_dataset(root: str | os.PathLike, n_images: int = 200, size: int = 192, seed: int = 0,
                     crack_free_fraction: float = 0.15, progress: bool = True) -> Path:
    """Write ``n_images`` synthetic pairs as ``root/images/*.png``, ``root/masks/*.png`` and ``root/meta.csv``.

    Idempotent: if ``root`` already holds a dataset made with the same parameters, nothing is written.
    The folder is built under a temporary name and renamed when complete, so an interrupted run never
    leaves a half-written dataset that looks finished.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if not 0.0 <= crack_free_fraction <= 1.0:
        raise ValueError(f"crack_free_fraction must be in [0, 1], got {crack_free_fraction}")
    root = Path(root)
    params = {"generator_version": GENERATOR_VERSION, "n_images": n_images, "size": size, "seed": seed,
              "crack_free_fraction": crack_free_fraction}
    stamp = root / "synthetic.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return root
    tmp = root.with_name(f".tmp-{root.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir()
    n_free = int(round(crack_free_fraction * n_images))
    free = set(np.random.default_rng(seed).choice(n_images, size=n_free, replace=False).tolist())
    rows = []
    for i in progress_bar(range(n_images), desc="synthetic images", enabled=progress):
        image, mask, info = generate_pair(seed * 1_000_003 + i, size=size, crack_free=i in free)
        sid = f"syn_{i:05d}"
        Image.fromarray(image).save(tmp / "images" / f"{sid}.png")
        Image.fromarray(mask).save(tmp / "masks" / f"{sid}.png")
        rows.append({"id": sid, "image_file": f"images/{sid}.png", "mask_file": f"masks/{sid}.png",
                     "w": size, "h": size, "crack_fraction": float((mask > 0).mean()),
                     "source_image": sid, **info})
    pd.DataFrame(rows).to_csv(tmp / "meta.csv", index=False)
    (tmp / "synthetic.json").write_text(json.dumps(params, indent=2))
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(root)
    return root
