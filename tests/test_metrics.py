import numpy as np
import pytest
import torch

from crack_utils import metrics


def stack(*images):
    return np.stack([np.asarray(i, dtype=bool) for i in images])


def test_hand_computed_counts_and_scores():
    pred = stack([[1, 1, 0, 0]])
    target = stack([[1, 0, 1, 0]])
    c = metrics.confusion_counts(pred[:, None], target[:, None])
    assert c.iloc[0].to_dict() == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    s = metrics.pooled_scores(pred[:, None], target[:, None])
    assert s == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "iou": 1 / 3, "dice": 0.5})


def test_perfect_and_worst():
    target = stack([[0, 1, 1, 0]], [[1, 0, 0, 0]])
    assert metrics.pooled_scores(target, target) == pytest.approx(dict.fromkeys(metrics.METRICS, 1.0))
    assert metrics.pooled_scores(~target, target) == pytest.approx(dict.fromkeys(metrics.METRICS, 0.0))


def test_empty_mask_rule():
    empty = stack([[0, 0, 0, 0]])
    fp = stack([[0, 1, 0, 0]])
    assert metrics.pooled_scores(empty, empty) == dict.fromkeys(metrics.METRICS, 1.0)
    assert metrics.pooled_scores(fp, empty) == dict.fromkeys(metrics.METRICS, 0.0)
    crack = stack([[1, 0, 0, 0]])
    assert metrics.pooled_scores(empty, crack) == dict.fromkeys(metrics.METRICS, 0.0)  # missed crack
    frame = metrics.per_image_scores(stack([[0, 0]], [[1, 0]]), stack([[0, 0]], [[0, 0]]))
    assert frame.loc[0, list(metrics.METRICS)].tolist() == [1.0] * 5
    assert frame.loc[1, list(metrics.METRICS)].tolist() == [0.0] * 5
    assert frame.has_crack.tolist() == [False, False]
    assert not frame.isna().any().any()


def test_all_crack_and_one_pixel_diagonal():
    full = np.ones((1, 4, 4), bool)
    assert metrics.pooled_scores(full, full)["iou"] == 1.0
    diag = np.eye(8, dtype=bool)[None]
    shifted = np.roll(diag, 1, axis=2)
    assert metrics.pooled_scores(shifted, diag)["f1"] == 0.0  # one pixel off: no overlap at all


def test_per_image_and_pooled_differ_as_expected():
    pred = stack([[1, 1, 1, 1]], [[0, 0, 0, 0]])
    target = stack([[1, 1, 1, 1]], [[1, 0, 0, 0]])
    pooled = metrics.pooled_scores(pred, target)
    macro = metrics.per_image_scores(pred, target)["recall"].mean()
    assert pooled["recall"] == pytest.approx(0.8)
    assert macro == pytest.approx(0.5)


def test_accepts_tensors_and_checks_input():
    p = torch.tensor([[[[1, 0], [0, 1]]]])
    assert metrics.pooled_scores(p, p)["dice"] == 1.0
    with pytest.raises(ValueError, match="binary"):
        metrics.pooled_scores(np.full((1, 2, 2), 0.7), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="does not match"):
        metrics.pooled_scores(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        metrics.pooled_scores(np.zeros((2, 2)), np.zeros((2, 2)))


def test_pooled_matches_smp_metrics():
    smp = pytest.importorskip("segmentation_models_pytorch")
    rng = np.random.default_rng(0)
    pred = rng.random((6, 1, 16, 16)) > 0.6
    target = rng.random((6, 1, 16, 16)) > 0.7
    tp, fp, fn, tn = smp.metrics.get_stats(torch.from_numpy(pred).long(), torch.from_numpy(target).long(), mode="binary")
    ours = metrics.pooled_scores(pred, target)
    assert ours["precision"] == pytest.approx(float(smp.metrics.precision(tp, fp, fn, tn, reduction="micro")))
    assert ours["recall"] == pytest.approx(float(smp.metrics.recall(tp, fp, fn, tn, reduction="micro")))
    assert ours["f1"] == pytest.approx(float(smp.metrics.f1_score(tp, fp, fn, tn, reduction="micro")))
    assert ours["iou"] == pytest.approx(float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro")))
    macro = metrics.per_image_scores(pred, target)
    assert macro["iou"].mean() == pytest.approx(float(smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro-imagewise")))


def test_per_batch_scores():
    pred = stack([[1, 0]], [[1, 0]], [[0, 0]])
    target = stack([[1, 0]], [[0, 1]], [[0, 1]])
    batches = metrics.per_batch_scores(pred, target, batch_size=2)
    assert len(batches) == 2
    assert batches.loc[0, "precision"] == pytest.approx(0.5)
    assert batches.loc[1, "recall"] == 0.0
    with pytest.raises(ValueError):
        metrics.per_batch_scores(pred, target, batch_size=0)


def test_aggregation_conventions_show_where_f1_and_dice_separate():
    rng = np.random.default_rng(1)
    target = rng.random((10, 8, 8)) > 0.8
    pred = target ^ (rng.random((10, 8, 8)) > 0.85)
    probs = np.where(pred, 0.7, 0.2)
    table = metrics.aggregation_conventions(pred, target, probs=probs, batch_size=5)
    same = ["pooled (micro)", "per-image mean (macro)", "per-batch mean (batch 5)"]
    assert np.allclose(table.loc[same, "f1_minus_dice"], 0.0)
    assert abs(table.loc["F1 from mean P, R; Dice per image", "f1_minus_dice"]) > 1e-4
    assert abs(table.loc["soft Dice per batch, hard F1 (batch 5)", "f1_minus_dice"]) > 1e-3
