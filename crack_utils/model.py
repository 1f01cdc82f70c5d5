"""The segmentation model: smp's U-Net with the paper's dropout (0.3) in encoder and decoder.

smp's ``Unet`` has no dropout of its own. :class:`DropoutUnet` keeps smp's encoder, decoder and head
and adds ``nn.Dropout2d(p)`` (a) on every encoder feature map handed to the decoder and (b) after the
second convolution of every decoder block. Dropout is active in ``train()`` mode only.
Pretrained weights are off by default (``encoder_weights=None``): this machine cannot download them.
"""
from __future__ import annotations

import torch
from torch import nn

from crack_utils.torchvision_compat import ensure_torchvision_importable


DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)  # smp's U-Net default; the CPU demo study halves them


class DropoutUnet(nn.Module):
    """U-Net (smp) with channel dropout in encoder and decoder.

    Input (N, 3, H, W) with H, W divisible by 32; output logits (N, 1, H, W).
    """

    def __init__(self, encoder_name: str = "resnet18", encoder_weights: str | None = None,
                 dropout: float = 0.3, decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        ensure_torchvision_importable()
        import segmentation_models_pytorch as smp

        self.unet = smp.Unet(encoder_name=encoder_name, encoder_weights=encoder_weights,
                             in_channels=3, classes=1, decoder_channels=tuple(decoder_channels))
        self.encoder_dropout = nn.Dropout2d(dropout)
        for block in self.unet.decoder.blocks:
            block.attention2 = nn.Sequential(block.attention2, nn.Dropout2d(dropout))
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unet.check_input_shape(x)
        features = self.unet.encoder(x)
        # features[0] is the input image itself for smp encoders: no dropout on raw pixels.
        features = [features[0]] + [self.encoder_dropout(f) for f in features[1:]]
        return self.unet.segmentation_head(self.unet.decoder(features))


def build_model(encoder_name: str = "resnet18", encoder_weights: str | None = None,
                dropout: float = 0.3, decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS) -> DropoutUnet:
    """Build the study's U-Net; see :class:`DropoutUnet`."""
    return DropoutUnet(encoder_name, encoder_weights, dropout, decoder_channels)


def pick_device(requested: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else CPU; otherwise the named device (``"cpu"``, ``"cuda:0"`` ...)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device
