"""Augmented training batches made with torch ops on the device that holds the arrays (issue 12).

On a GPU the CPU :class:`~crack_utils.loader.CrackDataset` (albumentations and an OpenCV distance transform
per item) cannot feed a U-Net at thousands of images/s. :class:`DeviceBatches` keeps the prepared uint8 arrays
on the device, uploaded once, and makes every batch there: the same sampling as
:class:`~crack_utils.loader.EpochSampler`, the augmentations of :func:`crack_utils.augment.training_augmentation`
re-implemented with torch ops, and the normalized distance map (``ND`` of Eq. 3, Özcan & Schmiedecke 2024)
computed exactly from the *augmented* mask by :func:`distance_maps_torch`.

Where the device path differs from the CPU one (the tests check everything else against it):

* **Random streams.** Draws come from a ``torch.Generator`` seeded from ``(seed, epoch)``, consumed batch by
  batch, not from albumentations' per-item seeds: individual draws differ from the CPU path's (and between a
  CPU and a CUDA generator, and with the batch size), their distributions do not. An epoch is reproducible and
  resumable on its own.
* **Independent draws.** Each transform is drawn independently with its own probability, as on the CPU
  path since :func:`crack_utils.augment.seed_augmentation` (before it, albumentations' per-item
  ``Compose.set_random_seed`` gave every transform one seed: flips, rotation and colour fired together).
* **Free rotation.** ``grid_sample`` with ``align_corners=True`` and ``padding_mode="reflection"`` reflects about
  the centres of the border pixels, which is OpenCV's ``BORDER_REFLECT_101`` (not ``BORDER_REFLECT``). OpenCV's
  ``warpAffine`` quantizes source coordinates to 1/32 px and interpolation weights to 15 bits; ``grid_sample``
  does not, so a rare rotated pixel differs by one grey level (measured: none, or 1 in 10⁴ pixels, at 64 px) and
  a nearest-neighbour mask pixel can differ where its source coordinate falls within 1/64 px of a rounding tie.
* **Skeleton tubes.** Not available (skeletonization does not vectorize on a GPU): the Skeleton Recall loss
  keeps the CPU loader.

The image is kept on the uint8 grid between steps as albumentations does (rotation rounds, brightness/contrast
clips and truncates, noise is truncated to integers and clipped to [0, 255]), then normalized with ImageNet
mean/std exactly as :func:`crack_utils.augment.normalize`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from crack_utils.augment import IMAGENET_MEAN, IMAGENET_STD
from crack_utils.distance import DEFAULT_NORMALIZATION, DEFAULT_RADIUS, EMPTY_MASK_VALUE, check_normalization
from crack_utils.loader import EpochSampler
from crack_utils.paper import BATCH_SIZE, IMAGE_SIZE

AUX_MAPS_ON_DEVICE: tuple[str, ...] = ("distance",)
BRIGHTNESS_LIMIT = 0.2  # as A.RandomBrightnessContrast in crack_utils.augment: beta = U(-0.2, 0.2) * 255
CONTRAST_LIMIT = 0.2  # alpha = 1 + U(-0.2, 0.2), out = alpha * x + beta (not around the mean)
EDT_CHUNK_BYTES = 256 * 2**20
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def edt_squared(masks: torch.Tensor, chunk_bytes: int = EDT_CHUNK_BYTES) -> torch.Tensor:
    """Exact squared Euclidean distance of every pixel to the nearest crack pixel, batched, in torch.

    ``masks``: (B, H, W), non-zero = crack. Returns float32 (B, H, W) on the masks' device, 0 on crack pixels,
    ``inf`` everywhere in a crack-free mask. Two separable passes: per row the distance ``g`` to the nearest crack
    pixel in that row (running max/min of crack positions), then per column ``d² = min_y' g(y')² + (y - y')²``
    as a broadcast over (columns, H, H), in chunks of at most ``chunk_bytes``. Values are integers below 2²⁴
    (images up to 2896 px), so float32 holds them exactly.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be 3-D (B, H, W), got shape {tuple(masks.shape)}")
    crack = masks != 0
    b, h, w = crack.shape
    x = torch.arange(w, device=crack.device, dtype=torch.float32)
    left = torch.where(crack, x, -math.inf).cummax(dim=-1).values
    right = torch.where(crack, x, math.inf).flip(-1).cummin(dim=-1).values.flip(-1)
    g2 = torch.minimum(x - left, right - x).square()  # (B, H, W), inf in rows without crack
    columns = g2.transpose(1, 2).reshape(b * w, h)  # (B·W, H)
    y = torch.arange(h, device=crack.device, dtype=torch.float32)
    dy2 = (y[:, None] - y[None, :]).square()  # (H out, H in)
    step = max(1, chunk_bytes // (4 * h * h))
    out = torch.cat([(c[:, None, :] + dy2).amin(dim=-1) for c in columns.split(step)])
    return out.reshape(b, w, h).transpose(1, 2).contiguous()


def distance_maps_torch(masks: torch.Tensor, normalization: str = DEFAULT_NORMALIZATION,
                        radius: float = DEFAULT_RADIUS) -> torch.Tensor:
    """Normalized distance to the nearest crack pixel (``ND`` of Eq. 3) for a batch, in torch.

    ``masks``: (B, H, W), non-zero = crack. Returns float32 (B, H, W) in [0, 1], 0 on crack pixels, equal to
    :func:`crack_utils.distance.distance_map` of every mask: ``"radius"`` ``min(d / radius, 1)``, ``"diagonal"``
    ``d / sqrt(H² + W²)``, ``"max"`` ``d / max d`` per image (0 on an all-crack tile). A crack-free mask gives
    1.0 everywhere under every normalization.
    """
    check_normalization(normalization, radius)
    # Square root in float64, rounded once to float32, as distance.raw_distance does (torch's float32 sqrt is
    # not always correctly rounded on CPU: sqrt(37) came out one ulp low).
    d = edt_squared(masks).double().sqrt().float()
    empty = torch.isinf(d[:, :1, :1])
    one = torch.ones((), device=d.device)
    if normalization == "radius":
        out = torch.minimum(d / torch.tensor(radius, dtype=torch.float32, device=d.device), one)
    elif normalization == "diagonal":
        out = d / torch.tensor(math.hypot(*d.shape[1:]), dtype=torch.float32, device=d.device)
    else:
        peak = d.masked_fill(torch.isinf(d), 0).amax(dim=(1, 2), keepdim=True)
        out = torch.where(peak > 0, d / peak.clamp_min(1), torch.zeros_like(d))  # clamp: no 0/0 to hide
    return torch.where(empty, EMPTY_MASK_VALUE * one, out)


def _d4_source_index(size: int, device: torch.device) -> torch.Tensor:
    """(16, S·S) flat source index of every output pixel for ``code = 4·k + 2·vflip + hflip``: h-flip, then
    v-flip, then ``k`` counter-clockwise quarter turns (``np.rot90``), the order of the CPU pipeline."""
    base = torch.arange(size * size, device=device).view(size, size)
    grids = []
    for k in range(4):
        for vflip in (False, True):
            for hflip in (False, True):
                g = base.flip(1) if hflip else base
                grids.append(torch.rot90(g.flip(0) if vflip else g, k, (0, 1)))
    return torch.stack(grids).flatten(1)


def d4_transform(images: torch.Tensor, masks: torch.Tensor, hflip: torch.Tensor, vflip: torch.Tensor,
                 quarter_turns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image flips and quarter turns, as one gather (an exact permutation of pixels).

    ``images`` (B, C, S, S), ``masks`` (B, 1, S, S); ``hflip``, ``vflip`` bool (B,), ``quarter_turns`` int (B,) in
    0..3 counter-clockwise. Applied in the order of :func:`crack_utils.augment.training_augmentation`.
    """
    s = images.shape[-1]
    code = 4 * quarter_turns.long() + 2 * vflip.long() + hflip.long()
    index = _d4_source_index(s, images.device)[code][:, None]  # (B, 1, S·S)

    def gather(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(2).gather(2, index.expand(-1, t.shape[1], -1)).view_as(t)

    return gather(images), gather(masks)


def rotate(images: torch.Tensor, masks: torch.Tensor, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image and mask by ``angles`` (B,) degrees about the image centre, as ``A.Rotate`` does.

    ``images`` float (B, C, S, S) on the uint8 grid, bilinear, rounded; ``masks`` (B, 1, S, S) in {0, 1},
    nearest, so they stay binary. Border: reflection about the border pixel centres (OpenCV's reflect-101).
    A positive angle turns the content counter-clockwise (``cv2.getRotationMatrix2D``'s convention).
    """
    b, _, h, w = images.shape
    theta = torch.deg2rad(angles.float())[:, None, None]
    cos, sin = theta.cos(), theta.sin()
    yy, xx = torch.meshgrid(torch.arange(h, device=images.device, dtype=torch.float32),
                            torch.arange(w, device=images.device, dtype=torch.float32), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    src_x = cx + cos * (xx - cx) - sin * (yy - cy)  # inverse of A.Rotate's matrix [[cos, sin], [-sin, cos]]
    src_y = cy + sin * (xx - cx) + cos * (yy - cy)
    grid = torch.stack([src_x * (2 / max(w - 1, 1)) - 1, src_y * (2 / max(h - 1, 1)) - 1], dim=-1)
    kw = dict(padding_mode="reflection", align_corners=True)
    return (F.grid_sample(images, grid, mode="bilinear", **kw).round(),
            F.grid_sample(masks, grid, mode="nearest", **kw))


def brightness_contrast(images: torch.Tensor, contrast: torch.Tensor, brightness: torch.Tensor) -> torch.Tensor:
    """``A.RandomBrightnessContrast`` (albumentations 2.0.8, uint8): ``floor(clip(alpha·x + beta, 0, 255))`` with
    ``alpha = 1 + contrast``, ``beta = 255·brightness``; ``contrast``, ``brightness`` (B,) in [-0.2, 0.2].
    ``images`` float (B, C, H, W) on the uint8 grid. Contrast scales about 0, not about the image mean."""
    alpha = (1 + contrast.float())[:, None, None, None]
    beta = (255 * brightness.float())[:, None, None, None]
    return (images * alpha + beta).clamp(0, 255).floor()


def gaussian_noise(images: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``A.GaussNoise`` (2.0.8, uint8, per channel): ``clip(x + trunc(255·std·n), 0, 255)``; ``std`` (B,) relative
    to 255, ``noise`` standard normal of the images' shape (B, C, H, W)."""
    return (images + (255 * std.float()[:, None, None, None] * noise).trunc()).clamp(0, 255)


def augment_batch(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
                  rotation_limit: float = 30.0, p_flip: float = 0.5, p_rotate: float = 0.5, p_color: float = 0.5,
                  noise_std: tuple[float, float] = (0.02, 0.08)) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmentations of :func:`crack_utils.augment.training_augmentation` for a batch, drawn from ``generator``.

    ``images`` float32 (B, 3, S, S) with values 0..255, ``masks`` float32 (B, 1, S, S) in {0, 1}; returns the same
    shapes, the mask exactly binary. Per image: h-flip and v-flip (``p_flip`` each), 0-3 quarter turns, rotation
    by U(±``rotation_limit``)° (``p_rotate``), brightness/contrast ±0.2 (``p_color``), Gaussian noise with std
    U(``noise_std``)·255 (``p_color``). The generator must live on the images' device.
    """
    b, dev = images.shape[0], images.device
    u = torch.rand((b, 9), generator=generator, device=dev)
    turns = torch.randint(0, 4, (b,), generator=generator, device=dev)
    noise = torch.randn(images.shape, generator=generator, device=dev)
    images, masks = d4_transform(images, masks, u[:, 0] < p_flip, u[:, 1] < p_flip, turns)
    if rotation_limit and p_rotate > 0:
        r_images, r_masks = rotate(images, masks, (2 * u[:, 3] - 1) * rotation_limit)
        on = (u[:, 2] < p_rotate)[:, None, None, None]
        images, masks = torch.where(on, r_images, images), torch.where(on, r_masks, masks)
    on = (u[:, 4] < p_color)[:, None, None, None]
    images = torch.where(on, brightness_contrast(images, (2 * u[:, 5] - 1) * CONTRAST_LIMIT,
                                                 (2 * u[:, 6] - 1) * BRIGHTNESS_LIMIT), images)
    on = (u[:, 7] < p_color)[:, None, None, None]
    low, high = noise_std
    images = torch.where(on, gaussian_noise(images, low + (high - low) * u[:, 8], noise), images)
    return images, masks


def normalize_torch(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) with values 0..255 -> float32 normalized with ImageNet mean/std, as
    :func:`crack_utils.augment.normalize`."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=images.device)[:, None, None]
    return (images.float() / torch.tensor(255.0, device=images.device) - mean) / std


def _to_device(array, device) -> torch.Tensor:
    return array.to(device) if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array)).to(device)


class DeviceBatches:
    """Training (or validation) batches of ``(image, mask, aux)`` made on the device, iterated like a DataLoader.

    ``images`` uint8 (N, S, S, 3), ``masks`` (N, S, S) (non-zero = crack), numpy arrays or tensors; uploaded once
    to ``device`` (default: the images' device, CPU for numpy). Each epoch yields ``ceil(num_samples /
    batch_size)`` batches (the last one may be partial): image float32 (B, 3, S, S) normalized, mask float32
    (B, 1, S, S) in {0, 1}, aux float32 (B, 1, S, S) the distance map of the augmented mask (``ND`` of Eq. 3;
    1.0 everywhere on a crack-free mask), all on ``device``. Items come in :class:`EpochSampler`'s order for
    ``(seed, epoch)`` (``shuffle=False``: stored order, for validation); ``augment=False`` gives un-augmented
    batches. Call :meth:`set_epoch` before each epoch. Only ``aux="distance"``: for skeleton tubes use
    :class:`crack_utils.loader.CrackDataset`.
    """

    def __init__(self, images, masks, batch_size: int = BATCH_SIZE, *, device: torch.device | str | None = None,
                 augment: bool = True, shuffle: bool = True, num_samples: int | None = None, seed: int = 0,
                 normalization: str = DEFAULT_NORMALIZATION, radius: float = DEFAULT_RADIUS, aux: str = "distance",
                 rotation_limit: float = 30.0, p_flip: float = 0.5, p_rotate: float = 0.5, p_color: float = 0.5,
                 noise_std: tuple[float, float] = (0.02, 0.08)):
        if aux == "skeleton_tube":
            raise ValueError("aux='skeleton_tube' is not available on the device (skeletonization does not "
                             "vectorize); use the CPU loader, crack_utils.loader.CrackDataset(aux='skeleton_tube')")
        if aux not in AUX_MAPS_ON_DEVICE:
            raise ValueError(f"unknown auxiliary map {aux!r}; valid on the device: {', '.join(AUX_MAPS_ON_DEVICE)}")
        check_normalization(normalization, radius)
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        if len(images) < 1:
            raise ValueError("cannot make batches from an empty training split")
        shape, mask_shape = tuple(images.shape), tuple(masks.shape)
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[1] < 2:
            raise ValueError(f"images must be (N, S, S, 3) with S >= 2, got shape {shape}")
        if mask_shape != shape[:3]:
            raise ValueError(f"masks must be (N, S, S) = {shape[:3]} to match the images, got shape {mask_shape}")
        if str(images.dtype) not in ("uint8", "torch.uint8"):
            raise ValueError(f"images must be uint8 (the augmentations follow the uint8 pipeline), got {images.dtype}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device is None:
            device = images.device if isinstance(images, torch.Tensor) else "cpu"
        self.device = torch.device(device)
        self.images = _to_device(images, self.device)
        self.masks = (_to_device(masks, self.device) != 0).to(torch.uint8)
        self.sampler = EpochSampler(len(images), num_samples, seed=seed)
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.normalization, self.radius = normalization, radius
        self.augment_kw = dict(rotation_limit=rotation_limit, p_flip=p_flip, p_rotate=p_rotate, p_color=p_color,
                               noise_std=noise_std)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(self.sampler.num_samples / self.batch_size)

    def indices(self) -> torch.Tensor:
        """This epoch's item indices (num_samples,), long, on the device: :class:`EpochSampler`'s order."""
        n = len(self.images)
        order = np.fromiter(self.sampler, dtype=np.int64) % n if self.shuffle else np.arange(self.sampler.num_samples)
        return torch.from_numpy(order).to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        generator = None
        if self.augment:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0]))
        for index in self.indices().split(self.batch_size):
            images = self.images[index].permute(0, 3, 1, 2).float()
            masks = self.masks[index][:, None].float()
            if generator is not None:
                images, masks = augment_batch(images, masks, generator, **self.augment_kw)
            aux = distance_maps_torch(masks[:, 0], self.normalization, self.radius)[:, None]
            yield normalize_torch(images), masks, aux


def device_batches_throughput(device: torch.device | str, n: int = 500, size: int = IMAGE_SIZE, batch_size: int = BATCH_SIZE,
                              epochs: int = 2, seed: int = 0) -> float:
    """Augmented training images/s that :class:`DeviceBatches` makes on ``device`` (no model), over ``epochs``
    passes of ``n`` random images after one warm-up batch. Random uint8 images and sparse random masks: the cost
    does not depend on the content."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)
    masks = (torch.rand((n, size, size), generator=g) > 0.98).to(torch.uint8)
    batches = DeviceBatches(images, masks, batch_size, device=device, seed=seed)
    sync = torch.cuda.synchronize if batches.device.type == "cuda" else (lambda *a: None)
    next(iter(batches))
    sync(batches.device)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for _ in batches:
            pass
    sync(batches.device)
    return epochs * n / (time.perf_counter() - t0)
