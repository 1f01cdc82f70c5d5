"""What a trained model's clDice + Dice loss is made of, on the validation images of its study.

``python -m crack_utils.tools.loss_terms results/seeds cldice-seed0 dice-seed0 [--images 100]`` prints, per
training: the soft-skeleton precision ``Tprec`` and sensitivity ``Tsens`` of soft clDice (Shit et al., CVPR
2021; :func:`crack_utils.losses.soft_cldice_terms`), the clDice and soft Dice losses, and the mean predicted
probability on background and on crack pixels. It shows why clDice + Dice over-segments after one pass
(results/README, ``seeds/``): the clDice term is low while the background is bright, because adding a
constant to every probability leaves the soft skeleton unchanged and raises ``Tsens``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def loss_terms(probs: np.ndarray, masks: np.ndarray, iterations: int = 3) -> dict[str, float]:
    """The terms for predicted probabilities ``probs`` and binary ``masks``, both (N, H, W), pooled over the
    images. Keys: ``tprec``, ``tsens``, ``cldice_loss``, ``soft_dice_loss``, ``p_background``, ``p_crack``
    (mean probability on mask-0 and mask-1 pixels; NaN where there are none)."""
    from crack_utils.losses import soft_cldice_loss, soft_cldice_terms, soft_dice_loss

    if probs.shape != masks.shape or probs.ndim != 3:
        raise ValueError(f"probs and masks must both be (N, H, W), got {probs.shape} and {masks.shape}")
    p = torch.as_tensor(probs, dtype=torch.float32)[:, None]
    y = torch.as_tensor(masks > 0, dtype=torch.float32)[:, None]
    tprec, tsens = (float(t) for t in soft_cldice_terms(p, y, iterations))
    crack = masks > 0
    return {"tprec": tprec, "tsens": tsens, "cldice_loss": float(soft_cldice_loss(p, y, iterations)),
            "soft_dice_loss": float(soft_dice_loss(p, y)),
            "p_background": float(probs[~crack].mean()) if (~crack).any() else float("nan"),
            "p_crack": float(probs[crack].mean()) if crack.any() else float("nan")}


def training_terms(results: Path, tag: str, images: int) -> dict[str, float]:
    """:func:`loss_terms` of training ``tag`` (e.g. ``cldice-seed0``) of the study in ``results``, on the
    first ``images`` validation images, with its best checkpoint."""
    from crack_utils import evaluation, manifest as mf, model as models, training
    from crack_utils.study import layout
    from crack_utils.training_records import TrainingParameters

    checkpoints = layout.checkpoint_dir(results, *layout.parse_tag(tag))
    if not (checkpoints / "best.pt").is_file():
        raise FileNotFoundError(f"{checkpoints / 'best.pt'} not found: train {tag} first (checkpoints stay on "
                                "the machine that trained them)")
    parameters = TrainingParameters.read(checkpoints)
    net = models.build_model(parameters.ENCODER, None, dropout=parameters.DROPOUT,
                             decoder_channels=tuple(parameters.DECODER_CHANNELS))
    training.load_checkpoint(net, checkpoints / "best.pt", device="cpu")
    _, val_images, val_masks = mf.load_split(layout.data_dir(results), "val")
    probs = evaluation.predict_probabilities(net, val_images[:images], device=torch.device("cpu"), progress=False)
    return loss_terms(probs, val_masks[:images])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, metavar="RESULTS", help="a study's results folder, e.g. results/seeds")
    parser.add_argument("tags", nargs="+", help="trainings, e.g. cldice-seed0 dice-seed0")
    parser.add_argument("--images", type=int, default=100, help="first N validation images (default 100)")
    args = parser.parse_args(argv)
    try:
        rows = [{"training": tag, **training_terms(args.study, tag, args.images)} for tag in args.tags]
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
