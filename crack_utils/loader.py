"""Torch datasets over the prepared arrays: (image, mask, distance map) triples.

Each item is ``image`` float32 (3, S, S) normalized, ``mask`` float32 (1, S, S) in {0, 1} and ``dist``
float32 (1, S, S), the normalized distance map of the (augmented) mask (see :mod:`crack_utils.distance`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from crack_utils.augment import normalize
from crack_utils.distance import DEFAULT_NORMALIZATION, DEFAULT_RADIUS, distance_map


class CrackDataset(Dataset):
    """``images`` uint8 (N, S, S, 3), ``masks`` uint8 (N, S, S); ``augment`` an albumentations transform
    or None (evaluation). Distance maps are computed after augmentation."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, augment=None,
                 normalization: str = DEFAULT_NORMALIZATION, radius: float = DEFAULT_RADIUS):
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        self.images, self.masks, self.augment = images, masks, augment
        self.normalization, self.radius = normalization, radius

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, mask = self.images[i], self.masks[i]
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        dist = distance_map(mask, self.normalization, self.radius)
        return (torch.from_numpy(normalize(image)),
                torch.from_numpy(mask[None].astype(np.float32)),
                torch.from_numpy(dist[None]))
