"""crack_utils.tools.loss_terms: the clDice terms of a trained model (the over-segmentation diagnosis)."""
import numpy as np
import pytest

from crack_utils.tools.loss_terms import loss_terms, main


def _line_masks():
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[0, 8, 2:14] = 1
    masks[1, 3:6, 4] = 1
    return masks


def test_a_perfect_prediction_and_a_brightened_background():
    masks = _line_masks()
    perfect = loss_terms(masks.astype(np.float32), masks)
    assert perfect["tprec"] == pytest.approx(1) and perfect["tsens"] == pytest.approx(1)
    assert perfect["cldice_loss"] == pytest.approx(0, abs=1e-6) and perfect["soft_dice_loss"] == pytest.approx(0, abs=1e-4)
    assert (perfect["p_background"], perfect["p_crack"]) == (0.0, 1.0)
    # the same cracks at 0.9 over a background at 0.4: the soft skeleton is that of 0.5 over 0, Tsens rises
    faint = loss_terms(0.5 * masks.astype(np.float32), masks)
    bright = loss_terms(0.4 + 0.5 * masks.astype(np.float32), masks)
    assert bright["tprec"] == pytest.approx(faint["tprec"], abs=1e-6) and bright["tsens"] > faint["tsens"]
    assert bright["cldice_loss"] < faint["cldice_loss"] and bright["soft_dice_loss"] > faint["soft_dice_loss"]
    assert bright["p_background"] == pytest.approx(0.4) and bright["p_crack"] == pytest.approx(0.9)


def test_crack_free_masks_and_bad_shapes():
    empty = np.zeros((1, 8, 8), np.uint8)
    terms = loss_terms(np.zeros((1, 8, 8), np.float32), empty)
    assert np.isnan(terms["p_crack"]) and terms["p_background"] == 0 and terms["cldice_loss"] == pytest.approx(0)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        loss_terms(np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 9), np.uint8))


def test_a_training_without_checkpoints_is_named(tmp_path, capsys):
    assert main([str(tmp_path), "cldice-seed0"]) == 1
    assert "checkpoints/cldice-seed0/best.pt not found" in capsys.readouterr().err
