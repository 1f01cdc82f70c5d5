"""Torch datasets over the prepared arrays: (image, mask, distance map) triples.

Each item is ``image`` float32 (3, S, S) normalized, ``mask`` float32 (1, S, S) in {0, 1} and an
auxiliary map float32 (1, S, S) of the (augmented) mask, the third argument of every loss: by default
(``aux="distance"``) the normalized distance map (see :mod:`crack_utils.distance`); for the Skeleton
Recall loss (``aux="skeleton_tube"``) the tubed skeleton (see :mod:`crack_utils.skeleton_tube`).

Reproducible augmentation: with a ``seed``, the augmentation of every item is seeded from
``(seed, epoch, index)``, where the epoch travels inside the index (:class:`EpochSampler` yields
``epoch * N + i``). So an item's augmentation does not depend on worker processes, on what was drawn
before, or on whether training was interrupted and resumed.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from crack_utils.augment import normalize, seed_augmentation
from crack_utils.distance import DEFAULT_NORMALIZATION, DEFAULT_RADIUS, distance_map
from crack_utils.skeleton_tube import skeleton_tube

AUX_MAPS = ("distance", "skeleton_tube")


class CrackDataset(Dataset):
    """``images`` uint8 (N, S, S, 3), ``masks`` uint8 (N, S, S); ``augment`` an albumentations transform
    or None (evaluation). Distance maps are computed after augmentation. Indices ``>= N`` encode an epoch
    (``epoch * N + i``, see :class:`EpochSampler`). ``aux``: the third map, one of :data:`AUX_MAPS` (the
    loss's ``aux_map`` attribute says which it needs)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, augment=None,
                 normalization: str = DEFAULT_NORMALIZATION, radius: float = DEFAULT_RADIUS,
                 seed: int | None = None, aux: str = "distance"):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        if aux not in AUX_MAPS:
            raise ValueError(f"unknown auxiliary map {aux!r}; valid: {', '.join(AUX_MAPS)}")
        self.images, self.masks, self.augment = images, masks, augment
        self.normalization, self.radius, self.seed, self.aux = normalization, radius, seed, aux

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        epoch, i = divmod(int(index), len(self.images))
        image, mask = self.images[i], self.masks[i]
        if self.augment is not None:
            if self.seed is not None:
                seed_augmentation(self.augment, [self.seed, epoch, i])
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        if self.aux == "skeleton_tube":
            dist = skeleton_tube(mask)
        else:
            dist = distance_map(mask, self.normalization, self.radius)
        return (torch.from_numpy(normalize(image)),
                torch.from_numpy(mask[None].astype(np.float32)),
                torch.from_numpy(dist[None]))


class EpochSampler(Sampler[int]):
    """Draws ``num_samples`` distinct items per epoch from a seeded permutation of ``(seed, epoch)``
    and yields ``epoch * n + i``, so the dataset knows the epoch. Call :meth:`set_epoch` before each epoch."""

    def __init__(self, n: int, num_samples: int | None = None, seed: int = 0):
        if n < 1:
            raise ValueError("cannot sample from an empty training split")
        self.n, self.seed, self.epoch = n, seed, 0
        self.num_samples = n if num_samples is None else min(num_samples, n)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)[: self.num_samples]
        return iter((self.epoch * self.n + order).tolist())

    def __len__(self) -> int:
        return self.num_samples
