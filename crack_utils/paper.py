"""The paper's protocol in numbers (Özcan and Schmiedecke, 2024, ``../shared/paper``): the one place that
holds them. Every default of the study that comes from the paper is imported from here — the config
defaults (:data:`crack_utils.study.config.DEFAULTS`), the loss, the model, the data preparation, the training
loop and the tools — so a reader checks the study against the paper in one file.

What the paper leaves open (the U-Net's backbone, the distance-map normalization and its radius, how L_Dist
reads probabilities) is the study's own decision and lives with its concern (:mod:`crack_utils.model`,
:mod:`crack_utils.distance`, :mod:`crack_utils.losses`; docs/decisions.md).
"""
from __future__ import annotations

#: Images and masks resized to 128 x 128 px ("Preprocessing").
IMAGE_SIZE = 128
#: The losses of Table 1, in its column order: binary cross-entropy, Dice, the Distance-based Loss.
TABLE1_LOSSES: tuple[str, ...] = ("bce", "dice", "distance")
#: Eq. 3's weight of L_Dist in the Distance-based Loss.
ALPHA = 4.0
#: Train / validation / test shares of the pairs.
SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
#: Adam: learning rate, batch size and epochs ("Training").
LR = 5e-4
BATCH_SIZE = 25
EPOCHS = 50
#: Dropout rate in the encoder and decoder.
DROPOUT = 0.3

#: Their Table 1: test scores per loss (the aggregation convention is not stated in the paper).
TABLE1: dict[str, dict[str, float]] = {
    "bce": {"precision": 0.4771, "recall": 0.2336, "f1": 0.2860, "iou": 0.2147, "dice": 0.3000},
    "dice": {"precision": 0.5202, "recall": 0.7407, "f1": 0.6001, "iou": 0.3824, "dice": 0.5609},
    "distance": {"precision": 0.5856, "recall": 0.7707, "f1": 0.6589, "iou": 0.5027, "dice": 0.6078},
}
