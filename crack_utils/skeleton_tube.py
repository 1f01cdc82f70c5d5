"""The tubed skeleton of a ground-truth mask, the target of the Skeleton Recall loss.

Kirchhoff et al., "Skeleton Recall Loss for Connectivity Conserving and Resource Efficient Segmentation of
Thin Tubular Structures", ECCV 2024: the mask is thinned to a 1-px skeleton (scikit-image's
``skeletonize``), widened into a tube by two dilations with the 4-neighbour cross, and kept inside the mask.
The reference computes it during data loading, after augmentation; so does :class:`crack_utils.loader.CrackDataset`
(``aux="skeleton_tube"``), exactly as it does the distance maps.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

TUBE_DILATIONS = 2
_CROSS = ndimage.generate_binary_structure(2, 1)


def skeleton_tube(mask: np.ndarray, dilations: int = TUBE_DILATIONS) -> np.ndarray:
    """Tubed skeleton of a binary ``mask`` (H, W) (any dtype, crack = nonzero): float32 (H, W) in {0, 1}.

    Skeleton (1 px, 8-connected), dilated ``dilations`` times with the cross and intersected with the mask,
    so cracks up to ``2·dilations + 1`` px wide are covered entirely and wider ones keep a band around their
    centre line. A crack-free mask gives all zeros (the loss's recall term is then 0, see
    :class:`crack_utils.losses.SkeletonRecallLoss`).
    """
    from skimage.morphology import skeletonize

    crack = np.asarray(mask) > 0
    if crack.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {crack.shape}")
    if dilations < 0:
        raise ValueError(f"dilations must be >= 0, got {dilations}")
    if not crack.any():
        return np.zeros(crack.shape, np.float32)
    tube = skeletonize(crack)
    if dilations:
        tube = ndimage.binary_dilation(tube, structure=_CROSS, iterations=dilations)
    return (tube & crack).astype(np.float32)
