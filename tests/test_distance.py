import numpy as np
import pytest

from crack_utils import distance

edt = pytest.importorskip("edt")


def test_hand_computed_radius_map():
    mask = np.zeros((1, 7), bool)
    mask[0, 0] = True
    d = distance.distance_map(mask, "radius", radius=4)
    np.testing.assert_allclose(d[0], [0, 0.25, 0.5, 0.75, 1, 1, 1])
    assert d.dtype == np.float32


def test_crack_pixels_are_zero_and_range_is_unit():
    rng = np.random.default_rng(0)
    mask = rng.random((32, 32)) > 0.97
    for norm in distance.NORMALIZATIONS:
        d = distance.distance_map(mask, norm)
        assert (d[mask] == 0).all()
        assert d.min() >= 0 and d.max() <= 1
        assert (d[~mask] > 0).all()


def test_diagonal_and_max_normalizations():
    mask = np.zeros((3, 4), bool)
    mask[0, 0] = True
    d_diag = distance.distance_map(mask, "diagonal")
    assert d_diag[2, 3] == pytest.approx(np.hypot(2, 3) / np.hypot(3, 4))
    d_max = distance.distance_map(mask, "max")
    assert d_max.max() == pytest.approx(1.0)
    assert d_max[0, 1] == pytest.approx(1 / np.hypot(2, 3))


def test_empty_mask_is_maximally_far_under_every_normalization():
    for norm in distance.NORMALIZATIONS:
        d = distance.distance_map(np.zeros((8, 8), np.uint8), norm)
        assert (d == 1.0).all()


def test_all_crack_tile_is_zero():
    for norm in distance.NORMALIZATIONS:
        assert (distance.distance_map(np.ones((5, 5), np.uint8), norm) == 0).all()


def test_one_pixel_diagonal_crack():
    mask = np.eye(16, dtype=np.uint8)
    d = distance.raw_distance(mask)
    assert d[0, 1] == pytest.approx(1.0)
    assert d[0, 2] == pytest.approx(np.sqrt(2))  # nearest crack pixel is (1, 1)


@pytest.mark.parametrize("shape, density", [((64, 48), 0.98), ((128, 128), 0.999), ((448, 300), 0.9995)])
def test_matches_scipy_and_edt_package(shape, density):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = rng.random(shape) > density
    mask[0, 0] = True
    ours = distance.raw_distance(mask)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ndimage.distance_transform_edt(~mask).astype(np.float32))
    np.testing.assert_allclose(ours, edt.edt((~mask).astype(np.uint8)), rtol=1e-6, atol=1e-5)
    assert all(np.array_equal(ours, distance.raw_distance(mask)) for _ in range(50))  # reproducible


@pytest.mark.parametrize("op", [np.fliplr, np.flipud, np.rot90, lambda a: np.rot90(a, 3), np.transpose])
def test_maps_follow_flips_and_rotations(op):
    rng = np.random.default_rng(5)
    mask = rng.random((24, 24)) > 0.95
    np.testing.assert_allclose(distance.distance_map(op(mask)), op(distance.distance_map(mask)), atol=1e-6)


def test_stack_matches_single_maps():
    masks = np.stack([np.eye(8, dtype=np.uint8), np.zeros((8, 8), np.uint8)])
    maps = distance.distance_maps(masks)
    np.testing.assert_array_equal(maps[0], distance.distance_map(masks[0]))
    assert (maps[1] == 1).all()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown distance normalization 'manhattan'.*radius, diagonal, max"):
        distance.distance_map(np.zeros((4, 4)), "manhattan")
    with pytest.raises(ValueError, match="radius must be a positive"):
        distance.distance_map(np.zeros((4, 4)), "radius", radius=0)
    with pytest.raises(ValueError, match="2-D"):
        distance.distance_map(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="3-D"):
        distance.distance_maps(np.zeros((4, 4)))
