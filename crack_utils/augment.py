"""Augmentation, behind this one module (albumentations 2.0.8 is pinned: its last MIT release).

The paper's augmentations: rotation, flips, brightness/contrast and Gaussian noise. Geometric transforms
move image and mask together (masks with nearest-neighbour, so 1-px cracks stay binary); the distance map
is computed *after* augmentation by the loader, so it always follows the augmented mask. Evaluation uses
no augmentation, only normalization (deterministic).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import albumentations as A

# albumentations (with OpenCV) is imported by training_augmentation, which uses it, not here: it takes ~1 s, and
# evaluation and the loader import this module only for :func:`normalize` (every notebook-04 run).

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def training_augmentation(rotation_limit: float = 30.0, p_flip: float = 0.5, p_color: float = 0.5,
                          noise_std: tuple[float, float] = (0.02, 0.08), seed: int | None = None) -> A.Compose:
    """Random D4 symmetries plus small-angle rotation, brightness/contrast and Gaussian noise.

    Input ``image`` uint8 (H, W, 3), ``mask`` uint8 (H, W); output the same shapes and dtypes.
    """
    import albumentations as A
    import cv2

    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.VerticalFlip(p=p_flip),
        A.RandomRotate90(p=1.0),
        A.Rotate(limit=rotation_limit, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=p_color),
        A.GaussNoise(std_range=noise_std, p=p_color),
    ], seed=seed)


def seed_augmentation(augment: A.Compose, key) -> None:
    """Seed ``augment`` for one item from ``key`` (e.g. ``[seed, epoch, index]``), each transform from its
    own stream.

    Albumentations' ``Compose.set_random_seed(s)`` hands the *same* seed to every transform, so their
    draws coincide: with equal probabilities the horizontal and vertical flips fire together (a half
    turn, never a mirror image), and rotation, contrast and noise fire together with correlated strengths.
    Every result committed before this function existed was trained with that correlated augmentation
    (see results/README.md). Here each transform gets an independent seed from
    ``numpy.random.SeedSequence(key)``."""
    seeds = np.random.SeedSequence(key).generate_state(len(augment.transforms) + 1)
    augment.set_random_seed(int(seeds[0]))
    for transform, seed in zip(augment.transforms, seeds[1:]):
        transform.set_random_seed(int(seed))


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W), ImageNet mean/std (the encoders' convention)."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
