import json
import shutil

import numpy as np
import pytest
import torch

from crack_utils import augment, distance, model as models, run_metadata, training
from crack_utils.loader import CrackDataset
from helpers import training_parameters


def test_distance_maps_follow_the_augmented_mask():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 5, 3:20] = 1
    masks[3] = 0  # crack-free
    ds = CrackDataset(images, masks, augment=augment.training_augmentation(seed=1))
    for i in range(4):
        image, mask, dist = ds[i]
        assert image.shape == (3, 32, 32) and mask.shape == dist.shape == (1, 32, 32)
        np.testing.assert_array_equal(dist[0].numpy(), distance.distance_map(mask[0].numpy()))
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0}
    assert (ds[3][2] == 1).all()


def test_augmentation_is_seeded_per_item_and_epoch():
    from crack_utils.loader import EpochSampler

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    masks = (rng.random((5, 32, 32)) > 0.9).astype(np.uint8)
    a = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=7)
    b = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=7)
    # same (epoch, item) -> same augmentation, whatever was drawn before
    first = a[5 + 2][0]
    for k in (0, 1, 4):
        b[k]
    assert torch.equal(first, b[5 + 2][0])
    assert not torch.equal(a[2][0], a[5 + 2][0])  # another epoch, another augmentation
    sampler = EpochSampler(5, num_samples=3, seed=1)
    sampler.set_epoch(2)
    drawn = list(sampler)
    assert len(drawn) == 3 and all(10 <= i < 15 for i in drawn) and len(set(drawn)) == 3
    assert drawn == list(sampler)


def test_augmentation_moves_image_and_mask_together():
    image = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    image[4:8, 20:28] = 255
    mask[4:8, 20:28] = 1
    aug = augment.training_augmentation(p_color=0.0, seed=3)
    for _ in range(10):
        out = aug(image=image, mask=mask)
        bright = out["image"].mean(axis=2) > 127
        assert (bright == out["mask"].astype(bool)).mean() > 0.97


def test_model_shapes_dropout_and_errors():
    net = models.build_model("resnet18", dropout=0.3, decoder_channels=(32, 16, 8, 8, 8))
    dropouts = [m for m in net.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert len(dropouts) == 6 and all(d.p == 0.3 for d in dropouts)  # 1 encoder + 5 decoder blocks
    x = torch.randn(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
    assert a.shape == (2, 1, 64, 64) and torch.equal(a, b)  # dropout off in eval mode
    net.train()
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # and on in training
    with pytest.raises(ValueError, match="dropout"):
        models.build_model(dropout=1.5)
    with pytest.raises(ValueError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            models.pick_device("cuda")
        else:
            raise ValueError("CUDA is not available (skipped: this machine has CUDA)")
    assert models.pick_device("auto").type in ("cpu", "cuda")


def test_training_writes_history_checkpoints_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, 10, :] = 1
    ds = CrackDataset(images, masks)

    def run(epochs, folder):
        torch.manual_seed(0)
        net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
        return training.train(net, _dice(), ds, ds, folder, epochs=epochs,
                              batch_size=3, progress=False, seed=0)

    h2 = run(2, tmp_path / "a")
    assert list(h2.epoch) == [1, 2] and (tmp_path / "a" / "history.csv").is_file()
    assert (tmp_path / "a" / "checkpoints" / "last.pt").is_file() and (tmp_path / "a" / "checkpoints" / "best.pt").is_file()
    h3 = run(3, tmp_path / "a")  # resumes after epoch 2
    assert list(h3.epoch) == [1, 2, 3]
    full = run(3, tmp_path / "b")  # uninterrupted
    assert h3.train_loss.tolist() == pytest.approx(full.train_loss.tolist(), rel=1e-6)
    assert h3.val_dice.iloc[-1] == pytest.approx(full.val_dice.iloc[-1], rel=1e-6)


def _dice():
    from crack_utils.losses import make_loss
    return make_loss("dice")


def test_divergence_stops_with_a_message(tmp_path):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    masks = np.zeros((2, 32, 32), np.uint8)

    def nan_loss(logits, target, dist):
        return logits.mean() * float("nan")

    with pytest.raises(training.TrainingDivergedError, match="loss became nan in epoch 1"):
        training.train(models.build_model(decoder_channels=(8, 8, 8, 8, 8)), nan_loss, CrackDataset(images, masks),
                       CrackDataset(images, masks), tmp_path, epochs=1, batch_size=2, progress=False)


def test_the_loss_read_every_few_steps_on_a_gpu_still_catches_a_nan_between_reads(tmp_path):
    loss_sum = training.LossSum(torch.device("cpu"), every=3)
    assert loss_sum.add(torch.tensor(1.0), 2) is False
    assert loss_sum.add(torch.tensor(float("nan")), 2) is False  # not read: the step does not wait
    assert loss_sum.add(torch.tensor(2.0), 2) is True
    with pytest.raises(training.TrainingDivergedError, match="loss became nan in epoch 4"):
        loss_sum.mean(4, tmp_path / "last.pt")
    # on CPU (every step) the same float64 arithmetic as the step-by-step float(loss) * n sum it replaced,
    # bit for bit, so CPU histories are unchanged
    losses = torch.rand(300, generator=torch.Generator().manual_seed(0))
    sizes = [25] * 299 + [7]
    on_device, plain = training.LossSum(torch.device("cpu"), every=1), 0.0
    for loss, n in zip(losses, sizes):
        on_device.add(loss, n)
        plain += float(loss) * n
    assert on_device.mean(1, tmp_path / "last.pt") == plain / sum(sizes)


def test_divergence_after_a_good_epoch_keeps_that_checkpoint(tmp_path):
    from crack_utils.losses import make_loss

    images = np.zeros((4, 32, 32, 3), np.uint8)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 3] = 1
    dice, calls = make_loss("dice"), {"n": 0}

    def dice_then_nan(logits, target, dist):
        calls["n"] += 1
        value = dice(logits, target, dist)
        return value * float("nan") if calls["n"] > 4 else value  # epoch 1: 2 train + 2 val batches

    with pytest.raises(training.TrainingDivergedError, match="loss became nan in epoch 2.*last.pt"):
        training.train(models.build_model(decoder_channels=(8, 8, 8, 8, 8)), dice_then_nan, CrackDataset(images, masks),
                       CrackDataset(images, masks), tmp_path, epochs=3, batch_size=2, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and all(np.isfinite(h["train_loss"]) for h in state["history"])


def test_checkpoint_dir_resumes_only_with_same_parameters(tmp_path):
    folder = tmp_path / "ck"
    assert training.prepare_checkpoint_dir(folder, training_parameters(LR=1)) == "fresh"
    (folder / "last.pt").write_bytes(b"x")
    assert training.prepare_checkpoint_dir(folder, training_parameters(LR=1)) == "resume"
    assert training.prepare_checkpoint_dir(folder, training_parameters(LR=2)) == "fresh"
    assert not (folder / "last.pt").exists()
    # the parameters handed on are a documented schema: a new or missing one is an error naming it
    with pytest.raises(ValueError, match="unknown EXTRA_KNOB.*missing SEED"):
        params = training_parameters(EXTRA_KNOB=1)
        del params["SEED"]
        training.prepare_checkpoint_dir(folder, params)
    without = training_parameters()
    del without["BATCHES"]  # only a stamp written before BATCHES existed may lack it, not what the notebook hands on
    with pytest.raises(ValueError, match="missing BATCHES"):
        training.prepare_checkpoint_dir(folder, without)


def test_alpha_one_trains_exactly_like_dice(tmp_path):
    # The ablation's built-in sanity check: Eq. 1 with alpha = 1 is Dice, so the same seed must give the
    # same weights step for step (the distance term is multiplied by exactly zero).
    from crack_utils.losses import make_loss

    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, :, 12] = 1
    masks[5] = 0  # one crack-free image
    ds = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=0)

    def run(loss, folder):
        torch.manual_seed(0)
        net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
        history = training.train(net, loss, ds, ds, folder, epochs=1, batch_size=3, progress=False, seed=0)
        return history, net

    h_dice, net_dice = run(make_loss("dice"), tmp_path / "dice")
    h_a1, net_a1 = run(make_loss("distance", alpha=1.0), tmp_path / "a1")
    h_a4, net_a4 = run(make_loss("distance", alpha=4.0), tmp_path / "a4")
    assert h_a1.train_loss.tolist() == h_dice.train_loss.tolist()
    for a, b in zip(net_a1.parameters(), net_dice.parameters()):
        assert torch.equal(a, b)
    assert h_a4.train_loss.tolist() != h_dice.train_loss.tolist()  # alpha does matter


def test_snapshots_equal_the_best_checkpoint_of_shorter_trainings(tmp_path):
    # The training-length study evaluates best-epoch<k>.pt of one long training instead of training each
    # budget separately; that is only honest if the snapshot is exactly what a k-epoch training leaves.
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, 7, :] = 1
    ds = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=0)

    def run(epochs, folder, snapshots=()):
        torch.manual_seed(0)
        net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
        return training.train(net, _dice(), ds, ds, folder, epochs=epochs, batch_size=3, progress=False,
                              seed=0, snapshot_epochs=snapshots)

    long = run(3, tmp_path / "long", snapshots=[1, 2])
    short = run(2, tmp_path / "short")
    ckpt = tmp_path / "long" / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("best-epoch*.pt")) == ["best-epoch1.pt", "best-epoch2.pt"]
    snapshot = torch.load(ckpt / training.snapshot_name(2), weights_only=False)
    best_short = torch.load(tmp_path / "short" / "checkpoints" / "best.pt", weights_only=False)
    assert snapshot["epoch"] == best_short["epoch"] == int(short.val_dice.idxmax()) + 1
    for key, value in best_short["model"].items():
        assert torch.equal(snapshot["model"][key], value), key
    assert snapshot["epoch"] <= 2 and len(long) == 3
    # a snapshot is the best.pt of its epoch itself (a hard link), not a second copy of the weights
    short_ckpt = tmp_path / "short2" / "checkpoints"
    run(2, tmp_path / "short2", snapshots=[2])
    assert (short_ckpt / "best-epoch2.pt").stat().st_ino == (short_ckpt / "best.pt").stat().st_ino
    # best.pt holds what evaluation needs, last.pt what resuming needs
    assert "optimizer" not in best_short and "optimizer" in torch.load(ckpt / "last.pt", weights_only=False)


def test_plateau_rule_on_history_tables():
    # the summary's verdict is plateau_status's (the one rule: the best Dice rose < 0.005 over two epochs)
    import pandas as pd

    def plateau(values):
        return training.plateau_reached(pd.DataFrame({"val_dice": values}))

    assert plateau([0.2, 0.5, 0.60, 0.603, 0.604])          # best +0.004 over the last two epochs
    assert not plateau([0.2, 0.5, 0.60, 0.603, 0.606])      # best +0.006: still learning
    assert plateau([0.3, 0.6, 0.58, 0.55])                  # falling: the best did not rise
    assert not plateau([0.28, 0.21])                        # too short to tell


def test_auto_precision_follows_the_hardware():
    assert training.resolve_amp(True, "cpu") and not training.resolve_amp(False, "cpu")
    assert training.resolve_amp("auto", "cpu") == run_metadata.native_cpu_bf16()


def test_amp_on_the_command_line_is_auto_on_or_off():
    assert training.parse_amp("auto") == "auto"
    assert training.parse_amp("on") is True and training.parse_amp("True") is True
    assert training.parse_amp("off") is False and training.parse_amp("false") is False
    with pytest.raises(ValueError, match="auto, on or off"):
        training.parse_amp("bf16")


def test_the_training_step_sees_the_loss_before_the_weights_change_then_steps():
    torch.manual_seed(0)
    net = models.build_model("resnet18", None, dropout=0.0, decoder_channels=(16, 16, 8, 8, 8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    image, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.8).float()
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    before = [p.detach().clone() for p in net.parameters()]
    seen = []

    def check(loss):  # called between the loss and the step: the weights are still the old ones
        seen.append((float(loss), all(torch.equal(a, b) for a, b in zip(before, net.parameters()))))

    net.train()
    loss = training.train_step(net, opt, lambda logits, m, aux: loss_fn(logits, m), image, mask, None,
                               channels_last=True, before_backward=check)
    assert seen == [(float(loss), True)]
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the step was taken


def test_crack_prior_sets_the_starting_probability_only():
    torch.manual_seed(0)
    plain = models.build_model(decoder_channels=(16, 8, 8, 8, 8)).eval()
    torch.manual_seed(0)
    prior = models.build_model(decoder_channels=(16, 8, 8, 8, 8), crack_prior=0.05).eval()
    bias = prior.unet.segmentation_head[0].bias
    assert float(torch.sigmoid(bias)) == pytest.approx(0.05) and float(plain.unet.segmentation_head[0].bias) == 0.0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():  # same weights otherwise: the logits differ by the bias alone
        assert torch.allclose(prior(x) - plain(x), bias.detach().expand(1, 1, 32, 32), atol=1e-5)
    with pytest.raises(ValueError, match=r"crack_prior must be in \(0, 1\)"):
        models.build_model(crack_prior=1.0)


def test_cosine_schedule_anneals_per_epoch_and_resumes_exactly(tmp_path):
    import math

    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, 12, :] = 1
    ds = CrackDataset(images, masks)
    dice = _dice()

    def run(folder, loss):
        torch.manual_seed(0)
        net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
        return training.train(net, loss, ds, ds, folder, epochs=4, batch_size=3, lr=1e-3, progress=False,
                              seed=0, lr_schedule="cosine")

    full = run(tmp_path / "full", dice)
    assert full.lr.tolist() == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    calls = {"n": 0}

    def dies_in_epoch_3(logits, target, dist):  # 2 training + 2 validation batches per epoch
        calls["n"] += 1
        if calls["n"] > 9:
            raise RuntimeError("killed")
        return dice(logits, target, dist)

    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "resumed", dies_in_epoch_3)
    resumed = run(tmp_path / "resumed", dice)  # continues from last.pt (epoch 2), scheduler included
    assert resumed.lr.tolist() == pytest.approx(full.lr.tolist())
    assert resumed.train_loss.tolist() == pytest.approx(full.train_loss.tolist(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'; valid: constant, cosine"):
        training.train(models.build_model(decoder_channels=(16, 8, 8, 8, 8)), dice, ds, ds, tmp_path / "x",
                       epochs=1, lr_schedule="linear", progress=False)


def _tiny_training(folder, epochs, **kwargs):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, 9, :] = 1
    ds = CrackDataset(images, masks)
    torch.manual_seed(0)
    net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
    return training.train(net, _dice(), ds, ds, folder, epochs=epochs, batch_size=3, progress=False, seed=0, **kwargs)


def test_progress_file_follows_the_training(tmp_path):
    history = _tiny_training(tmp_path, 2)
    info = json.loads((tmp_path / "checkpoints" / training.PROGRESS_FILE).read_text())
    assert info["epoch"] == 2 and info["epochs"] == 2 and info["batches"] == 2
    assert info["val_dice"] == pytest.approx(history.val_dice.iloc[-1])
    assert info["seconds_per_epoch"] == pytest.approx(history.seconds.mean())
    assert info["train_loss"] == pytest.approx(history.train_loss.iloc[-1])
    assert info["epoch_seconds"] is None  # between epochs


def test_progress_file_times_the_running_epoch(tmp_path, monkeypatch):
    written = []
    real_write = training.ProgressFile.write

    def record(self, epoch, batch, history, train_loss=None, force=False, epoch_seconds=None):
        real_write(self, epoch, batch, history, train_loss, force=True, epoch_seconds=epoch_seconds)
        written.append(json.loads(self.path.read_text()))

    monkeypatch.setattr(training.ProgressFile, "write", record)
    history = _tiny_training(tmp_path, 2)
    within = [w for w in written if w["batch"]]
    assert [(w["epoch"], w["batch"]) for w in within] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    # the time of the epoch's finished steps: none before its first step, then its first step's time
    assert [w["epoch_seconds"] for w in within[::2]] == [0.0, 0.0]  # the clock restarts every epoch
    assert 0 < within[1]["epoch_seconds"] < history.seconds[0] and 0 < within[3]["epoch_seconds"] < history.seconds[1]
    assert all(w["epoch_seconds"] is None for w in written if not w["batch"])


def test_segments_record_who_trained_the_weights_and_survive_a_rerun(tmp_path):
    _tiny_training(tmp_path, 2)
    first = json.loads((tmp_path / training.SEGMENTS_FILE).read_text())
    assert [(s["epochs_from"], s["epochs_to"]) for s in first] == [(0, 2)]
    assert {"git", "device", "seconds", "started"} <= set(first[0]) and "cpu_model" in first[0]["device"]
    _tiny_training(tmp_path, 2)  # re-entered: trains nothing, must not claim the weights
    assert json.loads((tmp_path / training.SEGMENTS_FILE).read_text()) == first
    _tiny_training(tmp_path, 3)  # extended by one epoch: a second segment
    third = json.loads((tmp_path / training.SEGMENTS_FILE).read_text())
    assert [(s["epochs_from"], s["epochs_to"]) for s in third] == [(0, 2), (2, 3)]
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)
    assert best["segments"] and "optimizer" not in best


def test_checkpoint_dir_extends_a_constant_rate_training(tmp_path):
    folder = tmp_path / "ck"
    _tiny_training(tmp_path, 2, checkpoint_dir=folder, snapshot_epochs=[1])
    base = training_parameters(LR=1, EPOCHS=2, SNAPSHOT_EPOCHS=[1], LR_SCHEDULE="constant")
    (folder / "parameters.json").write_text(json.dumps(base))
    assert training.prepare_checkpoint_dir(folder, dict(base, EPOCHS=4, SNAPSHOT_EPOCHS=[1, 4])) == "extend"
    assert training.prepare_checkpoint_dir(folder, dict(base, EPOCHS=4, SNAPSHOT_EPOCHS=[1, 4])) == "resume"
    assert (folder / "last.pt").is_file()
    # trained past the new length, or a new budget in its past: an error, never a silent deletion of the training
    with pytest.raises(ValueError, match="trained for 2 epochs, more than EPOCHS = 1.*--force train"):
        training.prepare_checkpoint_dir(folder, dict(base, EPOCHS=1))
    assert (folder / "last.pt").is_file()
    shutil.rmtree(folder)  # what --force train does
    _tiny_training(tmp_path, 2, checkpoint_dir=folder)
    cosine = dict(base, LR_SCHEDULE="cosine")
    (folder / "parameters.json").write_text(json.dumps(cosine))
    assert training.prepare_checkpoint_dir(folder, dict(cosine, EPOCHS=4)) == "fresh"  # the schedule depends on EPOCHS
    _tiny_training(tmp_path, 2, checkpoint_dir=folder)
    (folder / "parameters.json").write_text(json.dumps(base))
    assert training.prepare_checkpoint_dir(folder, dict(base, EPOCHS=4, LR=2)) == "fresh"  # not only the length


def test_seeded_augmentation_draws_each_transform_independently():
    # Albumentations' Compose.set_random_seed gives every transform the same seed: both flips then fire
    # together (a half turn) and no item is ever mirrored. Each transform must have its own stream.
    image = np.zeros((16, 16, 3), np.uint8)
    image[0, 1] = 255  # a marker whose position tells which D4 symmetry was applied
    mask = np.zeros((16, 16), np.uint8)
    mask[0, 1] = 1
    ds = CrackDataset(image[None], mask[None], augment=augment.training_augmentation(rotation_limit=0, p_color=0),
                      seed=0)
    mirrored = rotated = 0
    for epoch in range(400):
        m = ds[epoch][1][0].numpy()
        y, x = np.argwhere(m > 0)[0]
        # the 8 images of (0, 1): rotations keep the orientation, mirror images reverse it
        if (y, x) in {(1, 0), (0, 14), (15, 1), (14, 15)}:
            mirrored += 1
        elif (y, x) in {(0, 1), (1, 15), (15, 14), (14, 0)}:
            rotated += 1
    assert mirrored + rotated == 400
    assert 0.4 < mirrored / 400 < 0.6  # h-flip xor v-flip: probability 1/2 with independent flips


def test_training_on_device_batches_runs_and_resumes(tmp_path):
    # batches="device": DeviceBatches (torch-op augmentation, distance maps on the device) instead of the
    # CPU DataLoader; on CPU tensors here, the path CUDA takes by default
    rng = np.random.default_rng(4)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((6, 32, 32), np.uint8)
    masks[:, 9, :] = 1
    train_set = CrackDataset(images, masks, augment=augment.training_augmentation(), seed=0)
    val_set = CrackDataset(images, masks)

    def run(epochs, folder):
        torch.manual_seed(0)
        net = models.build_model(decoder_channels=(16, 8, 8, 8, 8))
        return training.train(net, _dice(), train_set, val_set, folder, epochs=epochs, batch_size=4, progress=False,
                              seed=0, batches="device")

    h1 = run(1, tmp_path / "a")
    h2 = run(2, tmp_path / "a")  # resumed
    full = run(2, tmp_path / "b")
    assert np.isfinite(full.train_loss).all() and full.val_dice.between(0, 1).all()
    assert h2.train_loss.tolist() == pytest.approx(full.train_loss.tolist(), rel=1e-6) and len(h1) == 1
    assert training.resolve_batches("auto", "cpu", train_set) == "loader"
    assert training.resolve_batches("auto", "cuda", train_set) == "device"
    assert training.resolve_batches("auto", "cuda", CrackDataset(images, masks, aux="skeleton_tube")) == "loader"
    with pytest.raises(ValueError, match="unknown batches 'gpu'"):
        training.train(models.build_model(decoder_channels=(8, 8, 8, 8, 8)), _dice(), train_set, val_set, tmp_path / "d",
                       epochs=1, batches="gpu", progress=False)


def test_checkpoints_stamped_before_a_parameter_existed_still_resume(tmp_path):
    folder = tmp_path / "ck"
    old = training_parameters(LR=1, EPOCHS=2)
    del old["BATCHES"]  # stamped before BATCHES existed
    folder.mkdir()
    (folder / "parameters.json").write_text(json.dumps(old))
    (folder / "last.pt").write_bytes(b"x")
    assert training.prepare_checkpoint_dir(folder, dict(old, BATCHES="auto")) == "resume"
    assert training.prepare_checkpoint_dir(folder, dict(old, BATCHES="device")) == "fresh"


def test_extending_needs_every_past_snapshot_the_new_list_names(tmp_path):
    folder = tmp_path / "ck"
    _tiny_training(tmp_path, 2, checkpoint_dir=folder, snapshot_epochs=[1])
    base = training_parameters(LR=1, EPOCHS=2, SNAPSHOT_EPOCHS=[1], LR_SCHEDULE="constant")
    (folder / "parameters.json").write_text(json.dumps(base))
    # epoch 2's best-as-of snapshot was never written: asking for it cannot be served by continuing, and
    # retraining silently would throw away the training: an error that says how to retrain
    with pytest.raises(ValueError, match=r"past the new snapshot epochs \[2\].*--force train"):
        training.prepare_checkpoint_dir(folder, dict(base, EPOCHS=3, SNAPSHOT_EPOCHS=[1, 2, 3]))
    assert (folder / "last.pt").is_file() and json.loads((folder / "parameters.json").read_text()) == base


def test_a_snapshot_keeps_its_weights_when_best_pt_is_replaced(tmp_path):
    best, snapshot = tmp_path / "best.pt", tmp_path / training.snapshot_name(1)
    training.atomic_torch_save({"epoch": 1, "w": torch.ones(3)}, best)
    training.keep_as(best, snapshot)
    assert snapshot.stat().st_ino == best.stat().st_ino  # a link: no second copy
    training.atomic_torch_save({"epoch": 2, "w": torch.zeros(3)}, best)  # a later, better epoch
    kept = torch.load(snapshot, weights_only=False)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert torch.load(best, weights_only=False)["epoch"] == 2 and snapshot.stat().st_ino != best.stat().st_ino
    training.keep_as(best, snapshot)  # relinking (a resumed epoch) replaces the snapshot atomically
    assert torch.load(snapshot, weights_only=False)["epoch"] == 2 and not list(tmp_path.glob(".tmp-*"))


def test_epochs_to_plateau_extends_two_at_a_time_never_shortens():
    import pandas as pd

    def epochs(values, start=4, most=8):
        return training.epochs_to_plateau(None if values is None else pd.DataFrame({"val_dice": values}), start, most)

    assert epochs(None) == 4 and epochs([0.5, 0.6]) == 4                # new, or shorter than epochs
    assert epochs([0.5, 0.6, 0.601, 0.603]) == 4                        # on the plateau (+0.003)
    assert epochs([0.5, 0.6, 0.601, 0.62]) == 6                         # +0.02: two more
    assert epochs([0.5, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65]) == 8        # capped at the maximum
    assert epochs([0.5, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.7]) == 8   # at the maximum: done
    assert epochs([0.1 * i for i in range(10)]) == 10                   # trained past it: kept, not shortened
