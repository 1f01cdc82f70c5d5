import numpy as np
import pytest

from crack_utils import claims


def line(h=32, w=32, row=10, cols=slice(2, 30)):
    m = np.zeros((h, w), bool)
    m[row, cols] = True
    return m


def test_crack_broken_into_three_pieces_has_three_components():
    target = line()
    broken = target.copy()
    broken[10, 10] = broken[10, 20] = False
    assert claims.components(broken) == 3 and claims.components(target) == 1
    s = claims.claim_scores(broken, target)
    assert s["components_pred"] == 3 and s["betti0_error"] == 2 and s["fragmentation"] == 3.0


def test_far_blob_false_positive_distance():
    target = line(row=2)
    pred = target.copy()
    pred[22, 15] = True  # 20 px below the crack
    pred[3, 15] = True   # 1 px away
    d = np.sort(claims.false_positive_distances(pred, target))
    np.testing.assert_allclose(d, [1.0, 20.0])
    s = claims.claim_scores(pred, target)
    assert s["fp_pixels"] == 2 and s["fp_far_5px"] == 1 and s["fp_far_20px"] == 0
    assert s["fp_far_5px_share"] == 0.5


def test_crack_free_image_false_positives_are_infinitely_far():
    empty = np.zeros((8, 8), bool)
    pred = empty.copy()
    pred[4, 4] = True
    assert np.isinf(claims.false_positive_distances(pred, empty)).all()
    assert claims.claim_scores(pred, empty)["fp_far_20px"] == 1
    assert claims.claim_scores(empty, empty)["cldice"] == 1.0
    assert claims.claim_scores(pred, empty)["cldice"] == 0.0
    assert np.isnan(claims.claim_scores(pred, empty)["fragmentation"])


def test_cldice_perfect_and_partial():
    target = np.zeros((32, 32), bool)
    target[8:11, 3:29] = True  # a 3-px wide crack
    assert claims.cldice(target, target) == 1.0
    half = target.copy()
    half[:, 16:] = False
    value = claims.cldice(half, target)
    assert 0.5 < value < 1.0  # topology precision 1, sensitivity about one half
    assert claims.cldice(np.zeros_like(target), target) == 0.0


def test_skeleton_of_a_thick_bar_is_thin_and_inside():
    bar = np.zeros((20, 40), bool)
    bar[5:12, 5:35] = True
    sk = claims.skeleton(bar)
    assert sk.any() and not (sk & ~bar).any() and sk.sum() < bar.sum() / 3


def test_tolerance_f1():
    target = line(row=10)
    shifted = line(row=12)
    exact = claims.tolerance_f1(shifted, target, radius=0)
    tol = claims.tolerance_f1(shifted, target, radius=2)
    assert exact["tol_f1"] == 0.0 and tol["tol_f1"] == 1.0
    assert claims.tolerance_f1(line(row=14), target, radius=2)["tol_f1"] == 0.0


def test_claim_table_and_errors():
    stack = np.stack([line(), np.zeros((32, 32), bool)])
    table = claims.claim_table(stack, stack, keys=["a", "b"])
    assert table.key.tolist() == ["a", "b"] and table.tol_f1.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="one shape"):
        claims.claim_scores(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        claims.claim_table(np.zeros((4, 4)), np.zeros((4, 4)))
