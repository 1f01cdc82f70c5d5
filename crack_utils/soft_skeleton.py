"""Soft (differentiable) morphology and skeletons on probability maps, for the clDice loss.

Shit et al., "clDice — a Novel Topology-Preserving Loss Function for Tubular Structure Segmentation",
CVPR 2021, Algorithm 1: erosion is a min-pooling (-maxpool(-x)) over a 3-px cross, dilation a 3×3
max-pooling, and the soft skeleton collects ``relu(x - open(x))`` over ``iterations`` erosions. All
functions take and return float tensors of shape (N, C, H, W) with values in [0, 1]; every channel is
treated alike (MONAI's ``SoftclDiceLoss`` drops channel 0 as background, which silently makes a
single-channel sigmoid output contribute nothing; ours has no such rule).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Min over the 3-px vertical and horizontal neighbourhoods (a cross-shaped erosion), same shape."""
    vertical = -F.max_pool2d(-x, kernel_size=(3, 1), stride=1, padding=(1, 0))
    horizontal = -F.max_pool2d(-x, kernel_size=(1, 3), stride=1, padding=(0, 1))
    return torch.minimum(vertical, horizontal)


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Max over the 3×3 neighbourhood, same shape."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def soft_open(x: torch.Tensor) -> torch.Tensor:
    return soft_dilate(soft_erode(x))


def soft_skeleton(x: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """Soft skeleton of ``x`` (Shit et al., Algorithm 1), same shape, in [0, 1].

    On a binary map it approximates the morphological skeleton: a 1-px line is its own skeleton; a wide
    band keeps its centre. ``iterations`` should be at least half the widest structure (in px) to reach
    its centre; crack masks at 128 px are rarely wider than 6 px, hence 3.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    skeleton = F.relu(x - soft_open(x))
    for _ in range(iterations):
        x = soft_erode(x)
        delta = F.relu(x - soft_open(x))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton
