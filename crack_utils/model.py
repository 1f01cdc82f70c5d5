"""The segmentation model: smp's U-Net with the paper's dropout (0.3) in encoder and decoder.

smp's ``Unet`` has no dropout of its own. :class:`DropoutUnet` keeps smp's encoder, decoder and head
and adds ``nn.Dropout2d(p)`` (a) on every encoder feature map handed to the decoder and (b) after the
second convolution of every decoder block. Dropout is active in ``train()`` mode only.
Pretrained weights are off by default (``encoder_weights=None``): this machine cannot download them.
``crack_prior`` optionally starts the output layer at that crack probability instead of 0.5 (the prior
initialization of Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017): with ~5 % crack pixels,
a network starting at 0.5 first spends its steps pushing every pixel down. It changes the starting point
only, the same for every loss.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from crack_utils.paper import DROPOUT
from crack_utils.torchvision_compat import ensure_torchvision_importable


DEFAULT_ENCODER = "resnet18"  # smp encoder of the U-Net (the paper's U-Net names no backbone)
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)  # smp's U-Net default; the CPU demo study halves them


class DropoutUnet(nn.Module):
    """U-Net (smp) with channel dropout in encoder and decoder.

    Input (N, 3, H, W) with H, W divisible by 32; output logits (N, 1, H, W).
    """

    def __init__(self, encoder_name: str = DEFAULT_ENCODER, encoder_weights: str | None = None,
                 dropout: float = DROPOUT, decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
                 crack_prior: float | None = None):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if crack_prior is not None and not 0.0 < crack_prior < 1.0:
            raise ValueError(f"crack_prior must be in (0, 1) or None, got {crack_prior!r}")
        ensure_torchvision_importable()
        import segmentation_models_pytorch as smp

        self.unet = smp.Unet(encoder_name=encoder_name, encoder_weights=encoder_weights,
                             in_channels=3, classes=1, decoder_channels=tuple(decoder_channels))
        self.encoder_dropout = nn.Dropout2d(dropout)
        for block in self.unet.decoder.blocks:
            block.attention2 = nn.Sequential(block.attention2, nn.Dropout2d(dropout))
        self.dropout = dropout
        if crack_prior is not None:  # output bias = logit(prior): every pixel starts at that probability
            nn.init.constant_(self.unet.segmentation_head[0].bias, math.log(crack_prior / (1.0 - crack_prior)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unet.check_input_shape(x)
        features = self.unet.encoder(x)
        # features[0] is the input image itself for smp encoders: no dropout on raw pixels.
        features = [features[0]] + [self.encoder_dropout(f) for f in features[1:]]
        return self.unet.segmentation_head(self.unet.decoder(features))


def build_model(encoder_name: str = DEFAULT_ENCODER, encoder_weights: str | None = None,
                dropout: float = DROPOUT, decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
                crack_prior: float | None = None) -> DropoutUnet:
    """Build the study's U-Net; see :class:`DropoutUnet`."""
    return DropoutUnet(encoder_name, encoder_weights, dropout, decoder_channels, crack_prior)


def pick_device(requested: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else CPU; otherwise the named device (``"cpu"``, ``"cuda:0"`` ...)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device
