import numpy as np
import pytest
import torch

from crack_utils import losses
from crack_utils.distance import distance_map
from crack_utils.skeleton_tube import skeleton_tube

PAPER = ("bce", "dice", "distance")
PEERS = ("focal_tversky", "lovasz", "boundary", "cldice", "skeleton_recall")
ALL = PAPER + PEERS


def t(values, shape=None):
    x = torch.tensor(values, dtype=torch.float32)
    return x.reshape(shape) if shape else x.reshape(1, 1, 1, -1)


def build(name, **options):
    """``make_loss(name)`` called as the training loop calls it: the third argument is the loss's auxiliary
    map of ``target`` (distance maps as given; the tubed skeleton for Skeleton Recall)."""
    fn = losses.make_loss(name, **options)
    if losses.aux_map(fn) != "skeleton_tube":
        return fn

    def with_tube(logits, target, dist):
        masks = target.detach().cpu().numpy()[:, 0]
        tube = torch.from_numpy(np.stack([skeleton_tube(m) for m in masks]))[:, None].to(target.dtype)
        return fn(logits, target, tube)
    return with_tube


def logit(p):
    p = torch.as_tensor(p, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


# ---- hand-computed values -------------------------------------------------------------------------
def test_soft_dice_hand_value():
    # intersection 0.5, sum(p)+sum(y) = 2, smooth 1 -> 1 - 2/3
    assert float(losses.soft_dice_loss(t([0.5, 0.5, 0, 0]), t([1, 0, 0, 0]))) == pytest.approx(1 / 3)


def test_soft_false_positive_distance_hand_value():
    # FP mass (0, .5, 1), weighted (0, .25, 1) -> 1.25 / (1.5 + 1)
    value = losses.soft_false_positive_distance(t([0.5, 0.5, 1.0]), t([1, 0, 0]), t([0, 0.5, 1.0]))
    assert float(value) == pytest.approx(0.5)


def test_hard_false_positive_distance_hand_value():
    value = losses.hard_false_positive_distance(t([0.6, 0.9, 0.2]), t([0, 0, 0]), t([0.2, 0.8, 1.0]))
    assert float(value) == pytest.approx(0.5)
    assert float(losses.hard_false_positive_distance(t([0.1, 0.2]), t([0, 1]), t([1, 0]))) == 0.0


def test_distance_loss_is_eq1():
    probs, target, dist = t([0.9, 0.7, 0.2, 0.6]), t([1, 0, 0, 0]), t([0, 0.25, 1, 1])
    logits = logit(probs)
    dice = losses.soft_dice_loss(torch.sigmoid(logits), target)
    l_dist = losses.soft_false_positive_distance(torch.sigmoid(logits), target, dist)
    expected = dice * (1 + l_dist * 3)
    assert float(losses.distance_based_loss(logits, target, dist, alpha=4)) == pytest.approx(float(expected))


def test_alpha_one_is_plain_dice():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.8).float()
    dist = torch.rand(2, 1, 8, 8)
    assert float(losses.make_loss("distance", alpha=1)(logits, target, dist)) == pytest.approx(
        float(losses.make_loss("dice")(logits, target, dist)))


# ---- perfect and worst predictions, crack-specific cases --------------------------------------------
def test_perfect_and_worst_predictions():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 3, :] = 1
    dist = torch.from_numpy(distance_map(target[0, 0].numpy()))[None, None]
    perfect, worst = logit(target) * 2, logit(1 - target) * 2
    for name in ALL:
        fn = build(name)
        assert float(fn(perfect, target, dist)) < 0.02, name
        assert float(fn(worst, target, dist)) > 0.9, name
    assert float(losses.make_loss("distance")(worst, target, dist)) > float(losses.make_loss("dice")(worst, target, dist))


def test_empty_target_with_and_without_false_positives():
    smp = pytest.importorskip("segmentation_models_pytorch")
    target = torch.zeros(1, 1, 8, 8)
    dist = torch.ones_like(target)  # crack-free rule: every pixel maximally far
    clean, noisy = torch.full_like(target, -20.0), torch.full_like(target, -20.0)
    noisy[..., :2, :2] = 20.0
    for name in ("dice", "distance"):
        fn = losses.make_loss(name)
        assert float(fn(clean, target, dist)) == pytest.approx(0.0, abs=1e-6)
        assert float(fn(noisy, target, dist)) > 0.7
    # smp's DiceLoss ignores the false positives on an empty target; ours does not (documented choice).
    smp_dice = smp.losses.DiceLoss("binary", from_logits=True)
    assert float(smp_dice(noisy, target)) == 0.0
    # With every pixel maximally far, Eq. 1 scales Dice by about alpha.
    ratio = float(losses.make_loss("distance")(noisy, target, dist) / losses.make_loss("dice")(noisy, target, dist))
    assert 3.0 < ratio <= 4.0


def test_all_crack_tile():
    target, dist = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    good = torch.full_like(target, 20.0)
    for name in ALL:
        assert float(build(name)(good, target, dist)) < 0.02


def test_one_pixel_diagonal_crack_far_fp_costs_more_than_near_fp():
    target = torch.eye(16)[None, None]
    dist = torch.from_numpy(distance_map(target[0, 0].numpy()))[None, None]
    base = torch.where(target > 0, 10.0, -10.0)
    near, far = base.clone(), base.clone()
    near[..., 0, 1] = 10.0   # next to the crack
    far[..., 15, 0] = 10.0   # far corner
    fn = losses.make_loss("distance")
    assert float(fn(far, target, dist)) > float(fn(near, target, dist))
    dice = losses.make_loss("dice")
    assert float(dice(far, target, dist)) == pytest.approx(float(dice(near, target, dist)), rel=1e-5)


def test_matches_smp_dice_on_non_empty_targets():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(1)
    logits = torch.randn(4, 1, 16, 16) * 3
    target = (torch.rand(4, 1, 16, 16) > 0.7).float()
    # smp 0.6 writes Dice as (TP + s) / (TP + (FP + FN)/2 + s): its smoothing s is our 2s.
    for smp_smooth in (0.0, 1.0):
        theirs = smp.losses.DiceLoss("binary", from_logits=True, smooth=smp_smooth)(logits, target)
        ours = losses.DiceLoss(smooth=2 * smp_smooth)(logits, target)
        assert float(ours) == pytest.approx(float(theirs), abs=1e-5)


# ---- gradients ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_gradients_finite_and_non_zero(name):
    torch.manual_seed(2)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.8).float()
    target[1] = 0  # one crack-free image
    dist = torch.from_numpy(np.stack([distance_map(m[0].numpy()) for m in target]))[:, None]
    build(name)(logits, target, dist).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_gradcheck_pure_functions():
    torch.manual_seed(3)
    probs = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(1, 1, 4, 4) > 0.6).double()
    dist = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: losses.soft_dice_loss(p, target), (probs,))
    assert torch.autograd.gradcheck(lambda p: losses.soft_false_positive_distance(p, target, dist), (probs,))
    logits = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda lg: losses.distance_based_loss(lg, target, dist, alpha=4), (logits,))


def test_hard_mode_only_rescales_dice_gradient():
    torch.manual_seed(4)
    logits = torch.randn(1, 1, 8, 8, requires_grad=True)
    target = (torch.rand(1, 1, 8, 8) > 0.8).float()
    dist = torch.rand(1, 1, 8, 8)
    losses.distance_based_loss(logits, target, dist, mode="hard").backward()
    g_hard = logits.grad.clone()
    logits.grad = None
    losses.make_loss("dice")(logits, target, dist).backward()
    scale = 1 + 3 * float(losses.hard_false_positive_distance(torch.sigmoid(logits), target, dist))
    torch.testing.assert_close(g_hard, logits.grad * scale)


# ---- invariance -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(2,), (3,), (2, 3)])
def test_flip_and_rotation_invariance(dims):
    torch.manual_seed(5)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.8).float()
    dist = torch.rand(2, 1, 8, 8)
    for name in ALL:
        fn = build(name)
        flipped = fn(logits.flip(dims), target.flip(dims), dist.flip(dims))
        rotated = fn(torch.rot90(logits, 1, (2, 3)), torch.rot90(target, 1, (2, 3)), torch.rot90(dist, 1, (2, 3)))
        assert float(flipped) == pytest.approx(float(fn(logits, target, dist)), rel=1e-5)
        assert float(rotated) == pytest.approx(float(fn(logits, target, dist)), rel=1e-5)


# ---- misuse -------------------------------------------------------------------------------------------
def test_errors():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="unknown loss 'focal'; valid: bce, dice, distance"):
        losses.make_loss("focal")
    with pytest.raises(ValueError, match="alpha must be a positive"):
        losses.make_loss("distance", alpha=0)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        losses.distance_based_loss(x, x, x, alpha=-1)
    with pytest.raises(ValueError, match="unknown L_Dist mode"):
        losses.make_loss("distance", mode="fuzzy")
    with pytest.raises(ValueError, match="does not match"):
        losses.make_loss("dice")(x, torch.zeros(1, 1, 4, 5), None)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        losses.make_loss("bce")(torch.zeros(4, 4), torch.zeros(4, 4), None)
    with pytest.raises(ValueError, match="dist shape"):
        losses.make_loss("distance")(x, x, torch.zeros(1, 1, 2, 2))
    with pytest.raises(TypeError, match="accepts: alpha, mode, threshold"):
        losses.make_loss("distance", alpah=4)
    with pytest.raises(TypeError, match="accepts: alpha, beta, gamma, smooth"):
        losses.make_loss("focal_tversky", delta=1)
    with pytest.raises(TypeError, match="accepts: weight, radius"):
        losses.make_loss("boundary", alpha=4)
    with pytest.raises(ValueError, match="gamma > 0"):
        losses.make_loss("focal_tversky", gamma=0)
    with pytest.raises(ValueError, match="weight > 0"):
        losses.make_loss("boundary", weight=-1)
    for name in PEERS:
        with pytest.raises(ValueError, match="does not match"):
            losses.make_loss(name)(x, torch.zeros(1, 1, 4, 5), x)


# ---- the peers beyond the paper: Focal-Tversky, Lovasz hinge (smp) and the boundary loss ------------------
def test_focal_tversky_hand_value_and_dice_special_case():
    # TP .5, FP .5, FN .5, smooth 1: TI = 1.5 / (.5 + .3·.5 + .7·.5 + 1) = .75 -> (1 - .75) ** .75
    value = losses.make_loss("focal_tversky")(logit(t([0.5, 0.5, 0, 0])), t([1, 0, 0, 0]), None)
    assert float(value) == pytest.approx(0.25 ** 0.75, rel=1e-4)
    # alpha = beta = 1/2 and gamma = 1 is Dice: smp's smoothing s is our Dice's 2s (non-empty targets)
    torch.manual_seed(6)
    logits, target = torch.randn(3, 1, 8, 8) * 2, (torch.rand(3, 1, 8, 8) > 0.7).float()
    tversky = losses.make_loss("focal_tversky", alpha=0.5, beta=0.5, gamma=1.0, smooth=0.5)
    assert float(tversky(logits, target)) == pytest.approx(float(losses.DiceLoss(smooth=1.0)(logits, target)), abs=1e-5)


def test_lovasz_hand_value():
    # logits (.5, .5), target (1, 0): hinge errors (.5, 1.5); sorted gradient of the Jaccard (.5, .5) -> 1.0
    assert float(losses.make_loss("lovasz")(t([0.5, 0.5]), t([1, 0]), None)) == pytest.approx(1.0)


def test_boundary_hand_value_and_signed_map():
    probs, target, dist = t([0.9, 0.7, 0.2, 0.6]), t([1, 0, 0, 0]), t([0, 0.25, 1, 1])
    expected = losses.soft_dice_loss(probs, target) + (0.7 * 0.25 + 0.2 + 0.6) / 4
    assert float(losses.make_loss("boundary")(logit(probs), target, dist)) == pytest.approx(float(expected), rel=1e-5)
    # a 3x3 crack block: border pixels 0, the centre (2 px from the background) -(2 - 1) / 20
    block = torch.zeros(1, 1, 5, 5)
    block[..., 1:4, 1:4] = 1
    block_dist = torch.from_numpy(distance_map(block[0, 0].numpy()))[None, None]
    phi = losses.signed_boundary_distance(block, block_dist, radius=20)[0, 0]
    assert float(phi[2, 2]) == pytest.approx(-0.05)
    assert float(phi[1, 1]) == 0.0 and float(phi[0, 0]) == pytest.approx(float(block_dist[0, 0, 0, 0]))
    assert float(phi[0, 0]) > 0


@pytest.mark.parametrize("name", PEERS)
def test_peers_on_crack_free_targets_penalize_false_positives(name):
    target = torch.zeros(2, 1, 8, 8)  # a whole batch without cracks (smp's Tversky alone would give 0)
    dist = torch.ones_like(target)
    clean, noisy = torch.full_like(target, -20.0), torch.full_like(target, -20.0).requires_grad_(True)
    noisy.data[..., :2, :2] = 2.0  # p = 0.88, not saturated
    fn = build(name)
    assert float(fn(clean, target, dist)) == pytest.approx(0.0, abs=1e-4)
    value = fn(noisy, target, dist)
    assert float(value.detach()) > 0.05
    value.backward()
    fp_grad = noisy.grad[..., :2, :2]
    # descent pushes the false positives down (Lovasz: only the largest error of a crack-free batch moves)
    assert torch.isfinite(noisy.grad).all() and (fp_grad >= 0).all() and fp_grad.sum() > 0
    if name != "lovasz":
        assert (fp_grad > 0).all()


def test_peers_gradcheck_in_float64():
    torch.manual_seed(7)
    target = (torch.rand(2, 1, 6, 6) > 0.7).double()
    target[0, 0, 0, 0] = 1
    dist = torch.from_numpy(np.stack([distance_map(m[0].numpy()) for m in target])).double()[:, None]
    for name in ("focal_tversky", "boundary", "cldice", "skeleton_recall"):
        fn = build(name)
        logits = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x: fn(x, target, dist), (logits,)), name


# ---- convergence smoke test ---------------------------------------------------------------------------
def _crack_and_distractor():
    size = 32
    image = torch.zeros(1, 1, size, size)
    target = torch.zeros(1, 1, size, size)
    target[..., 4:28, 6] = 1            # a thin vertical crack on the left
    image[target > 0] = -1.0
    distractor = torch.zeros_like(target, dtype=torch.bool)
    distractor[..., 12:18, 24:30] = True  # a dark stain far to the right
    image[distractor] = -1.0
    dist = torch.from_numpy(distance_map(target[0, 0].numpy()))[None, None]
    return image, target, dist, distractor


def _train_tiny(loss_name, steps=60):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
    image, target, dist, distractor = _crack_and_distractor()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    fn = build(loss_name)
    history, distractor_prob = [], []
    for _ in range(steps):
        logits = net(image)
        loss = fn(logits, target, dist)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        distractor_prob.append(torch.sigmoid(logits.detach())[distractor].mean().item())
    return history, distractor_prob


@pytest.mark.parametrize("name", PEERS)
def test_peers_converge_on_a_thin_crack(name):
    history, _ = _train_tiny(name)
    # clDice levels off higher: this 2-layer net cannot tell the dark stain from the crack, and the stain's
    # skeleton costs clDice's topology precision on top of Dice's overlap; it still falls to < 0.6 x start.
    assert np.mean(history[-5:]) < 0.6 * (history[0] if name == "cldice" else np.mean(history[:5])), history[::10]


def test_convergence_and_distractor_suppression():
    dist_hist, dist_distractor = _train_tiny("distance")
    dice_hist, dice_distractor = _train_tiny("dice")
    assert dist_hist[-1] < 0.5 * dist_hist[0]
    assert dice_hist[-1] < dice_hist[0]
    # The distance loss drives the far distractor's probability down faster than Dice alone.
    assert np.mean(dist_distractor[10:40]) < np.mean(dice_distractor[10:40])


def test_soft_l_dist_gradient_favours_near_and_penalizes_far_false_positives():
    # Documented property of Eq. 3 as a mean: near-crack FP mass lowers it, far FP mass raises it.
    probs = torch.full((1, 1, 1, 4), 0.5, requires_grad=True)
    target = torch.tensor([1.0, 0, 0, 0]).reshape(1, 1, 1, 4)
    dist = torch.tensor([0.0, 0.1, 0.5, 1.0]).reshape(1, 1, 1, 4)
    losses.soft_false_positive_distance(probs, target, dist).backward()
    grad = probs.grad.flatten()
    assert grad[1] < 0 < grad[3] and grad[0] == 0


# ---- thin-structure peers ----------------------------------------------------------------------------
def test_soft_skeleton_of_lines_and_bands():
    from crack_utils.soft_skeleton import soft_skeleton

    line = torch.zeros(1, 1, 7, 9)
    line[..., 3, 1:8] = 1
    assert torch.equal(soft_skeleton(line), line)  # a 1-px line is its own skeleton
    band = torch.zeros(1, 1, 11, 11)
    band[..., 3:8, :] = 1  # 5 px wide
    skeleton = soft_skeleton(band, iterations=3)
    assert skeleton[..., 5, 2:9].min() == 1 and skeleton[..., (3, 7), 2:9].max() == 0  # its centre line only
    diagonal = torch.eye(8)[None, None]
    assert torch.equal(soft_skeleton(diagonal), diagonal)
    with pytest.raises(ValueError, match="iterations"):
        soft_skeleton(line, iterations=-1)


def test_cldice_hand_values_single_channel():
    target = torch.zeros(1, 1, 3, 6)
    target[..., 1, 1:5] = 1  # a 4-px line
    # p = 0.5 on the line: Tprec = (2 + 1) / (2 + 1) = 1, Tsens = (2 + 1) / (4 + 1) = 0.6 -> 1 - 1.2 / 1.6
    assert float(losses.soft_cldice_loss(target * 0.5, target)) == pytest.approx(0.25)
    assert float(losses.soft_cldice_loss(target, target)) == pytest.approx(0.0)
    # nothing predicted: Tprec = 1, Tsens = 1 / 5 -> 1 - 0.4 / 1.2. A single-channel sigmoid output counts
    # (MONAI's SoftclDiceLoss skips channel 0 and would return 0 here).
    assert float(losses.soft_cldice_loss(torch.zeros_like(target), target)) == pytest.approx(2 / 3)
    combined = losses.make_loss("cldice", weight=0.5)(logit(target * 0.5), target, None)
    assert float(combined) == pytest.approx(0.5 * float(losses.soft_dice_loss(target * 0.5, target)) + 0.5 * 0.25, rel=1e-5)
    with_bce = losses.make_loss("cldice", weight=0.5, bce=True)(logit(target * 0.5), target, None)
    bce = float(torch.nn.functional.binary_cross_entropy(target * 0.5, target))  # log 2 on the line, 0 elsewhere
    assert float(with_bce) == pytest.approx(float(combined) + bce, rel=1e-5) and bce == pytest.approx(4 * np.log(2) / 18)


def test_cldice_is_blind_to_a_break_that_keeps_the_overlap():
    target = torch.zeros(1, 1, 9, 16)
    target[..., 4, 1:15] = 1
    gap = target.clone()
    gap[..., 4, 7:9] = 0           # the crack broken in the middle: 12 of 14 px
    short = target.clone()
    short[..., 4, 13:15] = 0       # the same 12 px, but connected
    dice = [float(losses.soft_dice_loss(p, target)) for p in (gap, short)]
    assert dice[0] == pytest.approx(dice[1])
    # clDice sees the same skeleton coverage here; its gradient and the Betti-0 metric see the break.
    assert float(losses.soft_cldice_loss(gap, target)) == pytest.approx(float(losses.soft_cldice_loss(short, target)))


def test_cldice_rewards_a_uniform_background_offset_that_only_dice_penalizes():
    # Why clDice + Dice over-segments (results/README, seeds study): the soft skeleton is built from
    # min/max pooling and relu(x - open(x)), so adding a constant c to every probability leaves it unchanged.
    # Tprec therefore stays put while Tsens = mean p on the true skeleton rises by c: the clDice term falls
    # as the whole background brightens, and only the Dice term (weight 1 - w) pushes back.
    from crack_utils.soft_skeleton import soft_skeleton

    target = torch.zeros(1, 1, 16, 16)
    target[..., 8, 2:14] = 1
    crack_only = 0.1 + 0.5 * target  # 0.6 on the crack, 0.1 elsewhere
    brighter = crack_only + 0.3      # 0.9 on the crack, 0.4 on the background
    assert torch.allclose(soft_skeleton(brighter), soft_skeleton(crack_only), atol=1e-6)
    cl = [float(losses.soft_cldice_loss(p, target)) for p in (crack_only, brighter)]
    dice = [float(losses.soft_dice_loss(p, target)) for p in (crack_only, brighter)]
    assert cl[1] < cl[0] and dice[1] > dice[0]


def test_cldice_option_errors():
    with pytest.raises(ValueError, match="weight must be in"):
        losses.make_loss("cldice", weight=0)
    with pytest.raises(ValueError, match="iterations must be an integer"):
        losses.make_loss("cldice", iterations=0)
    with pytest.raises(TypeError, match="it accepts: weight, iterations"):
        losses.make_loss("cldice", alpha=2)


def test_skeleton_tube_of_thin_and_wide_cracks():
    thin = np.zeros((9, 12), np.uint8)
    thin[4, 1:11] = 255
    np.testing.assert_array_equal(skeleton_tube(thin), (thin > 0).astype(np.float32))  # a 1-px crack is its own tube
    wide = np.zeros((15, 20), np.uint8)
    wide[3:12, 2:18] = 1  # 9 px wide: the tube is a band of at most 5 px around the skeleton, inside the mask
    tube = skeleton_tube(wide).astype(bool)
    assert not (tube & ~wide.astype(bool)).any() and tube[3].sum() == 0 and tube[11].sum() == 0
    assert (tube[:, 6:14].sum(axis=0) == 5).all()  # two dilations of a 1-px skeleton: 5 px across
    assert not skeleton_tube(np.zeros((8, 8))).any()  # crack-free: no tube
    with pytest.raises(ValueError, match="2-D"):
        skeleton_tube(np.zeros((2, 8, 8)))


def test_skeleton_recall_hand_values():
    target = torch.zeros(1, 1, 3, 6)
    target[..., 1, 1:5] = 1
    tube = target.clone()  # a 1-px crack: its tube is itself
    half = logit(target * 0.5 + (1 - target) * 1e-6)
    fn = losses.make_loss("skeleton_recall", weight=1.0, bce=False)
    dice = float(losses.soft_dice_loss(torch.sigmoid(half), target))
    # recall = (4 x 0.5 + 1) / (4 + 1) = 0.6
    assert float(fn(half, target, tube)) == pytest.approx(dice + 0.4, rel=1e-4)
    assert float(losses.make_loss("skeleton_recall", weight=2.0, bce=False)(half, target, tube)) == pytest.approx(dice + 0.8, rel=1e-4)
    with_bce = losses.make_loss("skeleton_recall")(half, target, tube)  # the reference's Dice + CE + w·SR
    bce = torch.nn.functional.binary_cross_entropy_with_logits(half, target)
    assert float(with_bce) == pytest.approx(dice + 0.4 + float(bce), rel=1e-4)
    # crack-free: the recall term is 0, false positives cost the Dice of the empty target
    empty, fp = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), -20.0)
    assert float(fn(fp, empty, empty)) == pytest.approx(0.0, abs=1e-6)
    fp[..., 0, 0] = 20.0
    assert float(fn(fp, empty, empty)) == pytest.approx(float(losses.soft_dice_loss(torch.sigmoid(fp), empty)))


def test_skeleton_recall_without_cross_entropy_can_stall_on_all_crack():
    # Why bce=True is the default (as in the reference): on the toy crack-and-stain image a 2-layer net
    # trained with Dice + recall alone settles on "every pixel is crack"; with cross-entropy it learns the crack.
    image, target, dist, _ = _crack_and_distractor()
    outcome = {}
    for bce in (False, True):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        fn = build("skeleton_recall", bce=bce)
        for _ in range(60):
            loss = fn(net(image), target, dist)
            opt.zero_grad()
            loss.backward()
            opt.step()
        outcome[bce] = float(torch.sigmoid(net(image)).detach()[target == 0].mean())
    assert outcome[False] > 0.5 and outcome[True] < 0.01, outcome


def test_skeleton_recall_charges_a_missed_thin_crack_more_than_a_missed_wide_crack_edge():
    # Dice weighs pixels alike; the recall term only sees the tube around each crack's centre line.
    target = np.zeros((1, 1, 20, 32), np.float32)
    target[..., 3, 10:22] = 1         # thin crack, 12 px
    target[..., 8:15, 2:30] = 1       # wide crack, 7 px wide
    tube = torch.from_numpy(skeleton_tube(target[0, 0]))[None, None]
    assert tube[..., 8, 10:22].sum() == 0  # the middle of the wide crack's edge row lies outside its tube
    target = torch.from_numpy(target)
    miss_thin = torch.where(target.bool(), 20.0, -20.0)
    miss_thin[..., 3, :] = -20.0
    miss_edge = torch.where(target.bool(), 20.0, -20.0)
    miss_edge[..., 8, 10:22] = -20.0  # the same 12 px, at the wide crack's edge
    dice = [float(losses.soft_dice_loss(torch.sigmoid(x), target)) for x in (miss_thin, miss_edge)]
    assert dice[0] == pytest.approx(dice[1], abs=1e-6)
    fn = losses.make_loss("skeleton_recall", bce=False)
    recall_term = 12 / (float(tube.sum()) + 1)
    assert float(fn(miss_thin, target, tube)) == pytest.approx(dice[0] + recall_term, rel=1e-3)
    assert float(fn(miss_edge, target, tube)) == pytest.approx(dice[1], abs=1e-5)  # recall untouched


def test_dataset_carries_the_skeleton_tube_after_augmentation():
    from crack_utils import augment
    from crack_utils.loader import CrackDataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[:, 10:13, 4:28] = 1
    masks[2] = 0
    ds = CrackDataset(images, masks, augment=augment.training_augmentation(seed=2), aux="skeleton_tube", seed=3)
    for i in range(3):
        _, mask, tube = ds[i]
        np.testing.assert_array_equal(tube[0].numpy(), skeleton_tube(mask[0].numpy()))
    assert not ds[2][2].any()
    with pytest.raises(ValueError, match="unknown auxiliary map 'skeleton'; valid: distance, skeleton_tube"):
        CrackDataset(images, masks, aux="skeleton")
    assert losses.aux_map(losses.make_loss("skeleton_recall")) == "skeleton_tube"
    assert losses.aux_map(losses.make_loss("distance")) == "distance"
