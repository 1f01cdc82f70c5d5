"""Losses compared in the study: BCE, Dice and the Distance-based Loss (Özcan & Schmiedecke 2024),
and peers beyond the paper: Focal-Tversky and Lovasz hinge (segmentation-models-pytorch's
implementations), the boundary loss of Kervadec et al. (a distance-aware peer), and two thin-structure
peers: soft clDice of Shit et al. and Skeleton Recall of Kirchhoff et al.

Pure functions on probabilities/logits, thin ``nn.Module`` wrappers, one factory :func:`make_loss`.
Every loss returned by the factory is called as ``loss(logits, target, dist)`` with float tensors of
shape (N, 1, H, W): ``logits`` raw model outputs, ``target`` in {0, 1}, ``dist`` the normalized
distance maps of :func:`crack_utils.distance.distance_map` (ignored by BCE and Dice) — or, for a loss whose
``aux_map`` is ``"skeleton_tube"`` (Skeleton Recall), the tubed skeleton of the target (:func:`aux_map`).

Empty-mask rule (crack-free images). smp's ``DiceLoss`` multiplies the loss by ``target.sum() > 0``,
so it is 0 on a crack-free target *whatever the prediction*. Ours is not: the soft Dice is pooled over
the whole batch with a smoothing term of 1 pixel, ``1 - (2·Σpy + s) / (Σp + Σy + s)``, which is 0 for
an empty prediction on an empty target and tends to 1 as false positives grow. On non-empty targets it
matches smp's value up to the smoothing term (a test checks this). The distance maps give every pixel of
a crack-free image the value 1 (every false positive maximally far). The peers state their own rule.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crack_utils.distance import DEFAULT_RADIUS
from crack_utils.paper import ALPHA as DEFAULT_ALPHA  # Eq. 3's alpha (the paper's 4)

DIST_MODES: tuple[str, ...] = ("soft", "hard")
DEFAULT_DIST_MODE = "soft"  # L_Dist of Eq. 2 weighs predicted probabilities (our reading); "hard" thresholds them first
DICE_SMOOTH = 1.0
DIST_EPS = 1.0


def _check_shapes(logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> None:
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits must have shape (N, 1, H, W), got {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    if dist is not None and dist.shape != logits.shape:
        raise ValueError(f"dist shape {tuple(dist.shape)} does not match logits {tuple(logits.shape)}")


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 (autocast) inputs are computed in float32; float32/float64 are kept as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """Soft Dice loss pooled over the batch: ``1 - (2·Σ p·y + s) / (Σ p + Σ y + s)``.

    The paper's Eq. 2 prints the Dice *coefficient* 2TP / (2TP + FP + FN); the loss is one minus its soft
    form on probabilities. ``probs``, ``target``: same shape, any. Empty target: ``Σp / (Σp + s)``, so
    false positives on crack-free images are penalized (unlike smp's ``DiceLoss``). Returns a scalar.
    """
    probs = _at_least_float32(probs)
    target = target.to(probs.dtype)
    intersection = (probs * target).sum()
    denominator = probs.sum() + target.sum()
    return 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)


def soft_false_positive_distance(
    probs: torch.Tensor, target: torch.Tensor, dist: torch.Tensor, eps: float = DIST_EPS
) -> torch.Tensor:
    """Differentiable L_Dist (Eq. 3): ``Σ p·(1-y)·d / (Σ p·(1-y) + eps)``, pooled over the batch.

    The soft false-positive mass ``p·(1-y)`` replaces the count of false positives, so every background
    pixel contributes in proportion to its probability. ``eps`` (default one pixel of mass) makes the term
    tend to 0 when there is (almost) no false-positive mass, as the hard form is 0 without false positives.
    ``dist`` in [0, 1] (1 everywhere on crack-free images). Returns a scalar in [0, 1).

    Caveat, inherited from Eq. 3 being a *mean*: false-positive mass closer to a crack than the current
    mean distance lowers the mean, so this term's gradient pushes such near-crack probabilities *up*
    (a halo around cracks), while it pushes far ones down. The hard form has no gradient of its own and
    no such incentive; ``mode="hard"`` makes the comparison.
    """
    probs = _at_least_float32(probs)
    fp_mass = probs * (1.0 - target.to(probs.dtype))
    return (fp_mass * dist.to(probs.dtype)).sum() / (fp_mass.sum() + eps)


def hard_false_positive_distance(
    probs: torch.Tensor, target: torch.Tensor, dist: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """Literal L_Dist (Eq. 3): mean ``dist`` over thresholded false positives, 0 if there are none.

    False positives are pixels with ``probs > threshold`` and ``target == 0``, pooled over the batch. The
    value is a constant with no gradient of its own: in Eq. 1 it only rescales the Dice gradient.
    """
    with torch.no_grad():
        fp = (probs > threshold) & (target < 0.5)
        n_fp = fp.sum()
        if n_fp == 0:
            return torch.zeros((), device=probs.device)
        return dist.float()[fp].sum() / n_fp


def distance_based_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dist: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    mode: str = DEFAULT_DIST_MODE,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Distance-based Loss, Eq. 1: ``L_DL = L_Dice · (1 + L_Dist · (α - 1))``.

    ``logits``, ``target``, ``dist``: (N, 1, H, W). ``L_Dice`` is :func:`soft_dice_loss` on
    ``sigmoid(logits)``; ``L_Dist`` is :func:`soft_false_positive_distance` (``mode="soft"``, default) or
    :func:`hard_false_positive_distance` (``mode="hard"``). α = 1 gives plain Dice; the paper uses α = 4.
    """
    _check_shapes(logits, target, dist)
    _check_options(alpha, mode)
    return _distance_based(logits, target, dist, alpha, mode, threshold)


def _check_options(alpha: float, mode: str) -> None:
    _check_alpha(alpha)
    if mode not in DIST_MODES:
        raise ValueError(f"unknown L_Dist mode {mode!r}; valid: {', '.join(DIST_MODES)}")


def _distance_based(logits, target, dist, alpha: float, mode: str, threshold: float) -> torch.Tensor:
    """Eq. 1 on checked inputs (:func:`distance_based_loss` checks them; the module, once at construction)."""
    probs = torch.sigmoid(_at_least_float32(logits))
    dice = soft_dice_loss(probs, target)
    if mode == "soft":
        l_dist = soft_false_positive_distance(probs, target, dist)
    else:
        l_dist = hard_false_positive_distance(probs, target, dist, threshold=threshold)
    return dice * (1.0 + l_dist * (alpha - 1.0))


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ValueError(f"alpha must be a positive number (paper: 4), got {alpha!r}")


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, mean over pixels (``F.binary_cross_entropy_with_logits``).

    Crack-free images need no special rule: every pixel is a well-defined negative.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        logits = _at_least_float32(logits)
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


class DiceLoss(nn.Module):
    """Soft Dice loss on ``sigmoid(logits)``, pooled over the batch (see :func:`soft_dice_loss`)."""

    def __init__(self, smooth: float = DICE_SMOOTH):
        super().__init__()
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth!r}")
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        return soft_dice_loss(torch.sigmoid(_at_least_float32(logits)), target, smooth=self.smooth)


class DistanceBasedLoss(nn.Module):
    """Distance-based Loss (Eq. 1-3) as a module; see :func:`distance_based_loss`."""

    def __init__(self, alpha: float = DEFAULT_ALPHA, mode: str = DEFAULT_DIST_MODE, threshold: float = 0.5):
        super().__init__()
        _check_options(alpha, mode)
        self.alpha, self.mode, self.threshold = float(alpha), mode, threshold

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, target, dist)
        return _distance_based(logits, target, dist, self.alpha, self.mode, self.threshold)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, mode={self.mode!r}"


def _smp_losses():
    """segmentation-models-pytorch's loss module (importing smp needs the torchvision step on CPU builds)."""
    from crack_utils.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from segmentation_models_pytorch import losses as smp_losses

    return smp_losses


class FocalTverskyLoss(nn.Module):
    """Focal-Tversky loss (Abraham & Khan 2019): ``(1 - TI) ** gamma`` with the Tversky index
    ``TI = TP / (TP + alpha·FP + beta·FN)`` on ``sigmoid(logits)``, pooled over the batch.

    Computed by smp's ``TverskyLoss("binary")`` (alpha weighs false positives, beta false negatives;
    defaults alpha 0.3, beta 0.7, gamma 0.75 = 1/(4/3), the paper's recommended setting). Empty-mask rule:
    smp returns 0 for a batch without any crack pixel (and its power has an infinite gradient there), so
    for such a batch we use our soft Dice of the empty target, ``Σp / (Σp + 1)``, which penalizes false
    positives; batches with at least one crack pixel are exactly smp's value. The focal power is applied
    to the loss clamped at 1e-6, so a perfect prediction gives a zero, not an infinite, gradient.
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75, smooth: float = 1.0):
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta <= 0 or gamma <= 0:
            raise ValueError(f"Focal-Tversky needs alpha, beta >= 0 (not both 0) and gamma > 0, got "
                             f"alpha={alpha!r}, beta={beta!r}, gamma={gamma!r}")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.tversky = _smp_losses().TverskyLoss("binary", from_logits=True, smooth=smooth,
                                                 alpha=alpha, beta=beta, gamma=1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        logits = _at_least_float32(logits)
        target = target.to(logits.dtype)
        if target.sum() == 0:
            loss = soft_dice_loss(torch.sigmoid(logits), target)
        else:
            loss = self.tversky(logits, target)
        return loss.clamp_min(1e-6) ** self.gamma

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}"


class LovaszHingeLoss(nn.Module):
    """Lovasz hinge (Berman et al. 2018), a convex surrogate of the Jaccard loss on logits, pooled over the
    batch: smp's ``LovaszLoss("binary", per_image=False)``. Empty-mask rule: none needed; on a crack-free
    batch the surrogate is the largest hinge error of a background pixel, so false positives are
    penalized."""

    def __init__(self, per_image: bool = False):
        super().__init__()
        self.per_image = bool(per_image)
        self.lovasz = _smp_losses().LovaszLoss("binary", per_image=per_image, from_logits=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        logits = _at_least_float32(logits)
        return self.lovasz(logits, target.to(logits.dtype))


def signed_boundary_distance(target: torch.Tensor, dist: torch.Tensor, radius: float = DEFAULT_RADIUS) -> torch.Tensor:
    """The level-set map φ of the boundary loss on the study's distance scale, (N, 1, H, W).

    Outside cracks φ is ``dist`` (the normalized distance map, 1 everywhere on crack-free images);
    on crack pixels ``φ = -min((d_in - 1) / radius, 1)`` with ``d_in`` the Euclidean distance (px) to the
    nearest background pixel, so pixels on a crack's border are 0 and its centre line is negative, as in
    Kervadec et al.'s signed map ``d_out·(1-y) - (d_in - 1)·y``. ``target`` has no gradient; the inside
    part is computed on the CPU with :func:`crack_utils.distance.raw_distance`.
    """
    from crack_utils.distance import raw_distance

    masks = target.detach().to("cpu", torch.float32).numpy()[:, 0] > 0.5
    inside = np.zeros(masks.shape, np.float32)
    for i, mask in enumerate(masks):
        if mask.any():
            depth = raw_distance(~mask)  # distance of crack pixels to the background; inf on an all-crack tile
            inside[i] = np.where(mask, np.minimum((depth - 1.0) / radius, 1.0), 0.0)
    inside_t = torch.from_numpy(inside)[:, None].to(device=dist.device, dtype=dist.dtype)
    crack = target > 0.5
    return torch.where(crack, -inside_t, dist)


class BoundaryLoss(nn.Module):
    """Boundary loss (Kervadec et al., MIDL 2019) next to soft Dice: ``L_Dice + weight · mean(p · φ)``.

    ``φ`` is :func:`signed_boundary_distance`: positive outside cracks and growing with the distance to
    them, so — like the Distance-based Loss — far false positives cost more than near ones, but
    *additively* and per pixel rather than as a factor on Dice. Kervadec et al. ramp the weight up over
    training; we use a constant ``weight`` (default 1.0, on φ in [-1, 1]) to keep one setting for the short
    protocols. Crack-free images: ``φ = dist = 1``, so every false positive costs ``weight · p / (H·W·N)``
    on top of the soft Dice of the empty target.
    """

    def __init__(self, weight: float = 1.0, radius: float = DEFAULT_RADIUS):
        super().__init__()
        if not weight > 0 or not radius > 0:
            raise ValueError(f"boundary loss needs weight > 0 and radius > 0, got weight={weight!r}, radius={radius!r}")
        self.weight, self.radius = float(weight), float(radius)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, target, dist)
        probs = torch.sigmoid(_at_least_float32(logits))
        phi = signed_boundary_distance(target, dist.to(probs.dtype), self.radius)
        return soft_dice_loss(probs, target) + self.weight * (probs * phi).mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight}, radius={self.radius}"


def soft_cldice_terms(probs: torch.Tensor, target: torch.Tensor, iterations: int = 3,
                      smooth: float = DICE_SMOOTH) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Tprec, Tsens)`` of :func:`soft_cldice_loss`, each a scalar tensor in [0, 1], pooled over the batch."""
    from crack_utils.soft_skeleton import soft_skeleton

    probs = _at_least_float32(probs)
    target = target.to(probs.dtype)
    skel_pred, skel_true = soft_skeleton(probs, iterations), soft_skeleton(target, iterations)
    tprec = ((skel_pred * target).sum() + smooth) / (skel_pred.sum() + smooth)
    tsens = ((skel_true * probs).sum() + smooth) / (skel_true.sum() + smooth)
    return tprec, tsens


def soft_cldice_loss(probs: torch.Tensor, target: torch.Tensor, iterations: int = 3,
                     smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """Soft clDice loss (Shit et al., CVPR 2021): ``1 - 2·Tprec·Tsens / (Tprec + Tsens)``, pooled over the batch.

    ``Tprec = (Σ S(p)·y + s) / (Σ S(p) + s)`` (the predicted skeleton lies inside the true crack) and
    ``Tsens = (Σ S(y)·p + s) / (Σ S(y) + s)`` (the true skeleton is covered), ``S`` the soft skeleton of
    :func:`crack_utils.soft_skeleton.soft_skeleton`. ``probs``, ``target``: (N, 1, H, W). Empty target:
    ``Tsens = 1`` and ``Tprec = s / (Σ S(p) + s)``, so a predicted skeleton on a crack-free batch is
    penalized and an empty prediction costs 0. Returns a scalar in [0, 1].
    """
    tprec, tsens = soft_cldice_terms(probs, target, iterations, smooth)
    return 1.0 - 2.0 * tprec * tsens / (tprec + tsens)


class ClDiceLoss(nn.Module):
    """Soft clDice next to soft Dice (Shit et al., CVPR 2021): ``(1 - w)·L_Dice + w·L_clDice``.

    A thin-structure peer: clDice rewards predicted skeletons inside true cracks and true skeletons covered
    by the prediction, i.e. connectivity rather than overlap. ``weight`` w in (0, 1] (default 0.5, the
    paper's), ``iterations`` of the soft skeleton (default 3). Single channel: every pixel counts (see
    :mod:`crack_utils.soft_skeleton`). Crack-free images: see :func:`soft_cldice_loss` and
    :func:`soft_dice_loss`; false positives are penalized by both terms.

    The soft skeleton does not change when a constant is added to every probability, so the clDice term
    falls as the whole background brightens (Tsens rises, Tprec stays) and only the Dice term pushes back:
    after one pass over the real data, clDice + Dice predicted p ≈ 0.6 on the background (results/README,
    seeds study). ``bce=True`` (default off: the paper's loss) adds binary cross-entropy, whose per-pixel
    cost of a brighter background counters this, as in Skeleton Recall's Dice + CE + w·term.
    """

    def __init__(self, weight: float = 0.5, iterations: int = 3, bce: bool = False):
        super().__init__()
        if not 0 < weight <= 1:
            raise ValueError(f"clDice weight must be in (0, 1], got {weight!r}")
        if not (isinstance(iterations, int) and iterations >= 1):
            raise ValueError(f"clDice iterations must be an integer >= 1, got {iterations!r}")
        self.weight, self.iterations, self.bce = float(weight), iterations, bool(bce)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        _check_shapes(logits, target)
        logits = _at_least_float32(logits)
        probs = torch.sigmoid(logits)
        loss = ((1.0 - self.weight) * soft_dice_loss(probs, target)
                + self.weight * soft_cldice_loss(probs, target, self.iterations))
        if self.bce:
            loss = loss + F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return loss

    def extra_repr(self) -> str:
        return f"weight={self.weight}, iterations={self.iterations}, bce={self.bce}"


class SkeletonRecallLoss(nn.Module):
    """Skeleton Recall (Kirchhoff et al., ECCV 2024) next to soft Dice:
    ``L_Dice [+ L_BCE] + weight · (1 - (Σ p·T + s) / (Σ T + s))``, pooled over the batch.

    ``T`` is the tubed skeleton of the ground truth, passed as the third argument (``aux_map =
    "skeleton_tube"``: the loader computes it after augmentation, see :mod:`crack_utils.skeleton_tube`).
    The recall term rewards covering every crack's centre line, not its area, so thin and faint cracks
    count as much as wide ones. ``weight`` (default 1, the reference's); ``bce`` (default on, the reference's
    Dice + CE + w·SkelRecall) adds binary cross-entropy. Without it, the recall term can win early in
    training: a convergence test shows a small net stuck predicting every pixel as crack (recall 1, Dice
    loss ≈ 0.95), which cross-entropy's per-pixel cost of false positives prevents.
    Crack-free batches: ``Σ T = 0`` makes the recall 1 and the term 0; false positives are penalized by
    the soft Dice of the empty target (:func:`soft_dice_loss`).
    """

    aux_map = "skeleton_tube"

    def __init__(self, weight: float = 1.0, bce: bool = True, smooth: float = DICE_SMOOTH):
        super().__init__()
        if not weight > 0:
            raise ValueError(f"skeleton recall weight must be > 0, got {weight!r}")
        self.weight, self.bce, self.smooth = float(weight), bool(bce), float(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, tube: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, target, tube)
        logits = _at_least_float32(logits)
        probs = torch.sigmoid(logits)
        tube = tube.to(probs.dtype)
        recall = ((probs * tube).sum() + self.smooth) / (tube.sum() + self.smooth)
        loss = soft_dice_loss(probs, target) + self.weight * (1.0 - recall)
        if self.bce:
            loss = loss + F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return loss

    def extra_repr(self) -> str:
        return f"weight={self.weight}, bce={self.bce}"


def aux_map(loss: nn.Module) -> str:
    """Which auxiliary map the loss takes as its third argument: ``"distance"`` (default) or
    ``"skeleton_tube"`` (see :data:`crack_utils.loader.AUX_MAPS`)."""
    return getattr(loss, "aux_map", "distance")


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "distance": DistanceBasedLoss,
    # peers beyond the paper (issue 6)
    "focal_tversky": FocalTverskyLoss,
    "lovasz": LovaszHingeLoss,
    "boundary": BoundaryLoss,
    # thin-structure peers (issue 13)
    "cldice": ClDiceLoss,
    "skeleton_recall": SkeletonRecallLoss,
}


def make_loss(name: str, **kwargs) -> nn.Module:
    """Build a loss by name, one of :data:`LOSSES` (``"bce"``, ``"dice"``, ``"distance"`` and the peers
    ``"focal_tversky"``, ``"lovasz"``, ``"boundary"``, ``"cldice"``, ``"skeleton_recall"``); keyword options
    go to its class.

    Raises ``ValueError`` listing the valid names for an unknown one, and ``TypeError`` naming the
    accepted options for an unknown keyword.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    try:
        return LOSSES[name](**kwargs)
    except TypeError as err:
        import inspect

        params = [p for p in inspect.signature(LOSSES[name].__init__).parameters if p != "self"]
        raise TypeError(
            f"bad options {sorted(kwargs)} for loss {name!r}; it accepts: {', '.join(params) or 'none'}"
        ) from err
