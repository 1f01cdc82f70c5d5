"""The device data path (crack_utils.device_batches) against the CPU one (albumentations, OpenCV, CrackDataset)."""
import cv2
import numpy as np
import pytest
import torch

import albumentations as A
from crack_utils import augment, distance
from crack_utils.device_batches import (
    DeviceBatches,
    brightness_contrast,
    device_batches_throughput,
    distance_maps_torch,
    edt_squared,
    gaussian_noise,
    rotate,
)
from crack_utils.loader import CrackDataset, EpochSampler

D4_ONLY = dict(p_rotate=0.0, p_color=0.0)


def _masks_zoo():
    """Random masks of several densities, 1-px lines, single pixels, full and empty masks, non-square too."""
    rng = np.random.default_rng(0)
    out = []
    for shape in [(16, 16), (7, 13), (13, 7)]:
        for p in (0.003, 0.02, 0.2, 0.7):
            out.append(rng.random((4, *shape)) < p)
        special = np.zeros((5, *shape), bool)
        special[0, 2, :] = True  # horizontal 1-px line
        special[1, :, 3] = True  # vertical 1-px line
        np.fill_diagonal(special[2], True)  # one-pixel diagonal crack
        special[3, shape[0] - 1, shape[1] - 1] = True  # a single corner pixel
        special[4] = True  # all-crack tile
        out.append(np.concatenate([special, np.zeros((1, *shape), bool)]))  # and a crack-free one
    return out


@pytest.mark.parametrize("normalization", distance.NORMALIZATIONS)
def test_torch_distance_maps_equal_the_cpu_maps(normalization):
    for masks in _masks_zoo():
        expected = distance.distance_maps(masks.astype(np.uint8), normalization, radius=5.0)
        got = distance_maps_torch(torch.from_numpy(masks), normalization, radius=5.0)
        assert got.dtype == torch.float32 and got.shape == masks.shape
        np.testing.assert_array_equal(got.numpy(), expected)


def test_edt_is_exact_squared_distance_and_inf_on_empty_masks():
    mask = torch.zeros(2, 4, 6, dtype=torch.uint8)
    mask[0, 0, 0] = 1
    d2 = edt_squared(mask)
    yy, xx = torch.meshgrid(torch.arange(4.0), torch.arange(6.0), indexing="ij")
    torch.testing.assert_close(d2[0], yy ** 2 + xx ** 2, rtol=0, atol=0)
    assert torch.isinf(d2[1]).all()
    assert (distance_maps_torch(mask)[1] == 1.0).all()  # crack-free: maximally far under every normalization


def test_edt_chunks_give_the_same_result():
    masks = torch.from_numpy(np.random.default_rng(1).random((3, 9, 11)) < 0.05)
    torch.testing.assert_close(edt_squared(masks, chunk_bytes=1), edt_squared(masks), rtol=0, atol=0)


def _d4_variants(a):
    """The 8 images of ``a`` (..., S, S) under the dihedral group, as numpy flips and rot90."""
    return [np.rot90(np.flip(a, -1) if h else a, k, (-2, -1)) for h in (False, True) for k in range(4)]


def test_flips_and_quarter_turns_move_image_mask_and_distance_map_together():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    mask = np.zeros((12, 12), np.uint8)
    mask[2, 1:9] = 1
    mask[2:7, 8] = 1  # an asymmetric "L": every D4 element gives a different mask
    n = 64
    batches = DeviceBatches(np.repeat(image[None], n, 0), np.repeat(mask[None], n, 0), batch_size=16, seed=3,
                            **D4_ONLY)
    expected_image = augment.normalize(image)  # (3, S, S)
    expected_aux = distance.distance_map(mask)
    seen = set()
    for img, msk, aux in batches:
        for i in range(len(img)):
            matches = [j for j, m in enumerate(_d4_variants(mask)) if np.array_equal(msk[i, 0].numpy(), m)]
            assert len(matches) == 1
            j = matches[0]
            seen.add(j)
            np.testing.assert_array_equal(img[i].numpy(), _d4_variants(expected_image)[j])
            np.testing.assert_array_equal(aux[i, 0].numpy(), _d4_variants(expected_aux)[j])
    assert len(seen) == 8


def _smooth_image(size, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("angle", [30.0, -12.5, 7.0])
def test_rotation_matches_albumentations_reflect101(angle):
    image = _smooth_image(32, seed=4)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:11, 3:26] = 1
    mask[20, :] = 1
    mask[:, 27] = 1
    cpu = A.Compose([A.Rotate(limit=(angle, angle), interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_REFLECT_101, p=1.0)])(
        image=image, mask=mask)
    img, msk = rotate(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                      torch.from_numpy(mask)[None, None].float(), torch.tensor([angle]))
    diff = np.abs(img[0].permute(1, 2, 0).numpy() - cpu["image"])
    assert diff.max() <= 2 and diff.mean() < 0.2  # OpenCV's 1/32-px fixed point, nothing more
    assert (msk[0, 0].numpy() != cpu["mask"]).mean() < 0.01
    # the opposite direction, or plain reflection instead of reflect-101, would be far off
    wrong, _ = rotate(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                      torch.from_numpy(mask)[None, None].float(), torch.tensor([-angle]))
    assert np.abs(wrong[0].permute(1, 2, 0).numpy() - cpu["image"]).mean() > 2


def test_free_rotation_keeps_mask_binary_and_aligned_with_image_and_aux():
    mask = np.zeros((24, 24), np.uint8)
    mask[6:14, 5:19] = 1
    mask[18, 2:22] = 1
    image = np.repeat((20 + 200 * mask)[..., None], 3, -1).astype(np.uint8)  # the image draws the mask
    n = 16
    batches = DeviceBatches(np.repeat(image[None], n, 0), np.repeat(mask[None], n, 0), batch_size=8, seed=5,
                            p_flip=0.0, p_rotate=1.0, p_color=0.0)
    bright = (120 / 255 - augment.IMAGENET_MEAN[0]) / augment.IMAGENET_STD[0]
    rotated = 0
    for img, msk, aux in batches:
        assert set(torch.unique(msk).tolist()) <= {0.0, 1.0}
        for i in range(len(img)):
            m = msk[i, 0].numpy().astype(bool)
            rotated += not any(np.array_equal(m, v) for v in _d4_variants(mask.astype(bool)))
            assert ((img[i, 0].numpy() > bright) == m).mean() > 0.95
            np.testing.assert_array_equal(aux[i, 0].numpy(), distance.distance_map(m))
    assert rotated >= n // 2  # only angles within a few degrees of 0 leave this mask's pixels in place


def _per_image_change(before, after):
    """Per image: change of the mean, ratio of the stds (1 for flat images), std of the pixelwise change."""
    before, after = before.reshape(len(before), -1).astype(float), after.reshape(len(after), -1).astype(float)
    ratio = after.std(1) / np.maximum(before.std(1), 1e-12)
    return after.mean(1) - before.mean(1), ratio, (after - before).std(1)


def test_brightness_contrast_statistics_match_albumentations():
    rng = np.random.default_rng(6)
    n = 1000
    images = rng.integers(60, 141, (n, 4, 4, 3), dtype=np.uint8)  # mean 100, almost no clipping
    cpu_transform = A.Compose([A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0)], seed=0)
    cpu = np.stack([cpu_transform(image=im)["image"] for im in images])
    g = torch.Generator().manual_seed(0)
    contrast, brightness = (torch.rand(2, n, generator=g) * 2 - 1) * 0.2
    gpu = brightness_contrast(torch.from_numpy(images).permute(0, 3, 1, 2).float(), contrast, brightness)
    gpu = gpu.permute(0, 2, 3, 1).numpy()
    assert ((gpu == np.floor(gpu)) & (gpu >= 0) & (gpu <= 255)).all()
    stats = {}
    for name, out in (("cpu", cpu), ("gpu", gpu)):
        shift, ratio, _ = _per_image_change(images, out)
        # alpha scales about 0 (albumentations), so the mean shift grows with alpha at ~mean(image) per unit
        slope = np.cov(shift, ratio)[0, 1] / ratio.var(ddof=1)
        stats[name] = dict(shift_mean=shift.mean(), shift_std=shift.std(), ratio_mean=ratio.mean(),
                           ratio_std=ratio.std(), slope=slope)
    cpu_s, gpu_s = stats["cpu"], stats["gpu"]
    assert cpu_s["shift_std"] == pytest.approx(np.sqrt(100 ** 2 * 0.4 ** 2 / 12 + 102 ** 2 / 12), rel=0.1)
    assert abs(gpu_s["shift_mean"] - cpu_s["shift_mean"]) < 4
    assert gpu_s["shift_std"] == pytest.approx(cpu_s["shift_std"], rel=0.1)  # brightness on the 255 scale
    assert gpu_s["ratio_mean"] == pytest.approx(cpu_s["ratio_mean"], abs=0.015)
    assert gpu_s["ratio_std"] == pytest.approx(cpu_s["ratio_std"], rel=0.1)
    assert abs(gpu_s["slope"] - cpu_s["slope"]) < 40 and cpu_s["slope"] > 60  # contrast about the mean: ~0


def test_gaussian_noise_statistics_match_albumentations():
    n = 500
    images = np.full((n, 8, 8, 3), 128, np.uint8)
    cpu_transform = A.Compose([A.GaussNoise(std_range=(0.02, 0.08), p=1.0)], seed=0)
    cpu = np.stack([cpu_transform(image=im)["image"] for im in images])
    g = torch.Generator().manual_seed(0)
    std = 0.02 + 0.06 * torch.rand(n, generator=g)
    gpu = gaussian_noise(torch.full((n, 3, 8, 8), 128.0), std, torch.randn(n, 3, 8, 8, generator=g))
    gpu = gpu.permute(0, 2, 3, 1).numpy()
    assert (gpu == np.round(gpu)).all()
    _, _, cpu_spread = _per_image_change(images, cpu)
    _, _, gpu_spread = _per_image_change(images, gpu)
    assert cpu_spread.mean() == pytest.approx(0.05 * 255, rel=0.1)  # std relative to 255
    assert gpu_spread.mean() == pytest.approx(cpu_spread.mean(), rel=0.05)
    assert gpu_spread.std() == pytest.approx(cpu_spread.std(), rel=0.15)
    assert abs(gpu.mean() - cpu.mean()) < 0.3  # truncation toward 0 keeps the noise centred


def test_colour_transforms_are_drawn_independently_with_p_one_half():
    n = 400
    image = np.full((8, 8, 3), 128, np.uint8)  # geometry leaves a constant image unchanged
    mask = np.zeros((8, 8), np.uint8)
    batches = DeviceBatches(np.repeat(image[None], n, 0), np.repeat(mask[None], n, 0), batch_size=100, seed=0)
    out = torch.cat([b[0] for b in batches]).flatten(2).numpy()  # (n, 3, 64)
    unchanged = np.isclose(out, augment.normalize(image).reshape(3, -1), rtol=0, atol=1e-6).all((1, 2))
    flat = np.isclose(out, out[:, :, :1], rtol=0, atol=1e-6).all((1, 2))  # brightness/contrast keeps it flat
    assert unchanged.mean() == pytest.approx(0.25, abs=0.07)  # neither drawn
    assert (flat & ~unchanged).mean() == pytest.approx(0.25, abs=0.07)  # brightness/contrast only
    assert (~flat).mean() == pytest.approx(0.5, abs=0.07)  # noise, with or without brightness/contrast


def test_cpu_pipeline_draws_its_transforms_independently():
    # Like the device path, the CPU path must draw each transform independently (it did not before
    # augment.seed_augmentation: albumentations' Compose.set_random_seed gives every transform one seed).
    n = 200
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    masks = np.zeros((n, 8, 8), np.uint8)
    masks[:, 1, 2:7] = 1
    masks[:, 2:4, 6] = 1  # an asymmetric "L"
    dataset = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=0)
    mirrored = [any(np.array_equal(dataset[i][1][0].numpy(), m) for m in _d4_variants(masks[i])[4:])
                for i in range(n)]
    assert np.mean(mirrored) > 0.1  # half of the D4 elements are mirror images (0 today)


def test_unaugmented_batches_equal_the_cpu_dataset_items():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    masks = (rng.random((5, 16, 16)) < 0.05).astype(np.uint8)
    masks[2] = 0
    dataset = CrackDataset(images, masks, normalization="diagonal")
    batches = DeviceBatches(images, masks, batch_size=2, augment=False, shuffle=False, normalization="diagonal")
    got = [torch.cat(parts) for parts in zip(*batches)]
    for i in range(5):
        for g, e in zip(got, dataset[i]):
            torch.testing.assert_close(g[i], e, rtol=0, atol=1e-6)


def test_epoch_order_and_batch_sizes_follow_the_epoch_sampler():
    n, num_samples, bs = 11, 9, 4
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], 4, 1).repeat(4, 2).repeat(3, 3)
    masks = np.zeros((n, 4, 4), np.uint8)
    batches = DeviceBatches(images, masks, batch_size=bs, augment=False, num_samples=num_samples, seed=8)
    sampler = EpochSampler(n, num_samples, seed=8)
    for epoch in (0, 3):
        batches.set_epoch(epoch)
        sampler.set_epoch(epoch)
        out = list(batches)
        assert [len(b[0]) for b in out] == [4, 4, 1] and len(batches) == 3
        red = torch.cat([b[0][:, 0, 0, 0] for b in out]) * augment.IMAGENET_STD[0] + augment.IMAGENET_MEAN[0]
        assert (red * 255).round().long().tolist() == [i % n for i in sampler]


def test_same_seed_and_epoch_give_identical_batches_other_epochs_differ():
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    masks = (rng.random((6, 16, 16)) < 0.1).astype(np.uint8)
    first = DeviceBatches(images, masks, batch_size=4, seed=1)
    epochs = []
    for epoch in range(3):
        first.set_epoch(epoch)
        epochs.append(list(first))
    resumed = DeviceBatches(images, masks, batch_size=4, seed=1)
    resumed.set_epoch(2)  # a fresh instance resumes epoch 2 exactly
    for a, b in zip(epochs[2], resumed):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])


def test_shapes_dtypes_and_device():
    rng = np.random.default_rng(10)
    images = torch.from_numpy(rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8))
    masks = torch.from_numpy((rng.random((5, 8, 8)) < 0.1).astype(np.uint8))
    batches = DeviceBatches(images, masks, batch_size=2, seed=0)
    for img, msk, aux in batches:
        assert img.shape[1:] == (3, 8, 8) and msk.shape[1:] == aux.shape[1:] == (1, 8, 8)
        assert img.dtype == msk.dtype == aux.dtype == torch.float32
        assert img.device == msk.device == aux.device == images.device
        assert aux.min() >= 0 and aux.max() <= 1


def test_misuse_raises_clear_errors():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    masks = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="3 images but 2 masks"):
        DeviceBatches(images, masks[:2])
    with pytest.raises(ValueError, match=r"\(N, S, S, 3\)"):
        DeviceBatches(images[..., :2], masks)
    with pytest.raises(ValueError, match="masks must be"):
        DeviceBatches(images, masks[:, :4])
    with pytest.raises(ValueError, match="uint8"):
        DeviceBatches(images.astype(np.float32), masks)
    with pytest.raises(ValueError, match="unknown distance normalization 'sqrt'"):
        DeviceBatches(images, masks, normalization="sqrt")
    with pytest.raises(ValueError, match="unknown distance normalization"):
        distance_maps_torch(torch.from_numpy(masks), "sqrt")
    with pytest.raises(ValueError, match="CrackDataset"):
        DeviceBatches(images, masks, aux="skeleton_tube")
    with pytest.raises(ValueError, match="valid on the device: distance"):
        DeviceBatches(images, masks, aux="ridges")
    with pytest.raises(ValueError, match="3-D"):
        edt_squared(torch.zeros(8, 8))


def test_throughput_is_a_positive_number():
    assert device_batches_throughput("cpu", n=4, size=16, batch_size=2, epochs=1) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_match_the_cpu_maps_and_stay_on_the_gpu():
    for masks in _masks_zoo():
        for normalization in distance.NORMALIZATIONS:
            got = distance_maps_torch(torch.from_numpy(masks).cuda(), normalization, radius=5.0)
            np.testing.assert_allclose(got.cpu().numpy(), distance.distance_maps(masks, normalization, radius=5.0),
                                       rtol=0, atol=1e-6)
    rng = np.random.default_rng(12)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    masks = (rng.random((6, 16, 16)) < 0.05).astype(np.uint8)
    for img, msk, aux in DeviceBatches(images, masks, batch_size=4, device="cuda", seed=0):
        assert img.is_cuda and msk.is_cuda and aux.is_cuda
        assert set(torch.unique(msk).tolist()) <= {0.0, 1.0}
        np.testing.assert_allclose(aux[:, 0].cpu().numpy(), distance.distance_maps(msk[:, 0].cpu().numpy()),
                                   rtol=0, atol=1e-6)
    dataset = CrackDataset(images, masks)
    plain = DeviceBatches(images, masks, batch_size=6, device="cuda", augment=False, shuffle=False)
    for got, expected in zip(next(iter(plain)), zip(*[dataset[i] for i in range(6)])):
        torch.testing.assert_close(got.cpu(), torch.stack(expected), rtol=0, atol=1e-5)
    assert device_batches_throughput("cuda", n=8, size=16, batch_size=4, epochs=1) > 0
