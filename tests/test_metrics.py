"""Metrics and task losses against values computed by hand (not by the library they call)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables.losses.task import TASK_LOSSES
from trainables.metrics import METRICS, get_metric

torch.set_num_threads(1)


def test_every_metric_is_lower_is_better():
    """Each metric scores a perfect prediction lower than a wrong one (mode "min" is true of the
    function, not just declared)."""
    assert all(m.mode == "min" for m in METRICS.values())
    labels = np.array([0, 1, 1, 0])
    perfect, wrong = np.eye(2)[labels] * 10, np.eye(2)[1 - labels] * 10
    assert get_metric("error_rate").fn(perfect, labels) < get_metric("error_rate").fn(wrong, labels)
    target = np.linspace(1, 2, 16).reshape(1, 1, 4, 4)
    for key in ("relative_l2", "nrmse"):
        assert get_metric(key).fn(target, target) < get_metric(key).fn(target * 2, target), key
    with pytest.raises(KeyError, match="error_rat"):
        get_metric("error_rat")


# ----------------------------------------------------------------------------- metrics


def test_error_rate_in_percent():
    out = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 5.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.0]])
    assert METRICS["error_rate"].fn(out, np.array([0, 2, 0, 1])) == pytest.approx(50.0)


def test_relative_l2_is_a_mean_of_per_sample_ratios():
    out = np.array([[3.0, 4.0], [1.0, 0.0]])
    y = np.array([[0.0, 5.0], [2.0, 0.0]])
    # sample 1: ||(3, -1)|| / 5 = sqrt(10) / 5; sample 2: 1 / 2
    assert METRICS["relative_l2"].fn(out, y) == pytest.approx((math.sqrt(10) / 5 + 0.5) / 2)


def test_nrmse_is_per_sample_and_channel():
    out = np.array([[[1.0, 1.0], [0.0, 0.0]]])  # (N=1, C=2, X=2)
    y = np.array([[[1.0, 3.0], [10.0, 10.0]]])
    # channel 0: sqrt(4/2) / sqrt(10/2) = sqrt(2/5); channel 1: 10 / 10 = 1
    expected = (math.sqrt(2 / 5) + 1.0) / 2
    assert METRICS["nrmse"].fn(out, y) == pytest.approx(expected)
    # flattening the channels together (ORCA's nmse) would give sqrt(51) / sqrt(52.5) instead
    assert abs(expected - math.sqrt(51 / 52.5)) > 0.1


def _psicov_case() -> tuple[np.ndarray, np.ndarray]:
    w = 30
    y = np.full((3, 1, w, w), 100.0)
    p = np.full((3, 1, w, w), 50.0)
    # protein 0: one counted pair (0, 25); upper 4, lower 8 -> upper (4 + 8) / 2 = 6,
    # then (lower 8 + upper 6) / 2 = 7 against a true 6: error 1
    y[0, 0, 0, 25] = 6.0
    p[0, 0, 0, 25], p[0, 0, 25, 0] = 4.0, 8.0
    y[0, 0, 0, 23] = 5.0  # separation 23: not counted
    y[0, 0, 1, 26] = 8.5  # farther than 8 A: not counted
    y[0, 0, 26, 1] = 3.0  # lower triangle: not counted
    # protein 1: (2, 28) true 8.0 counted (<= 8), prediction 10 -> error 2;
    # (3, 29) true 2, prediction -5 clipped to 0.01 -> error 1.99
    y[1, 0, 2, 28] = 8.0
    p[1, 0, 2, 28] = p[1, 0, 28, 2] = 10.0
    y[1, 0, 3, 29] = 2.0
    p[1, 0, 3, 29] = p[1, 0, 29, 3] = -5.0
    # protein 2: no counted pair (skipped)
    return p, y


def test_mae8_by_hand():
    p, y = _psicov_case()
    per_protein = [1.0, (2.0 + 1.99) / 2]
    assert METRICS["mae8"].fn(p, y) == pytest.approx(np.mean(per_protein))
    pooled = (1.0 + 2.0 + 1.99) / 3
    assert METRICS["mae8"].fn(p, y) != pytest.approx(pooled)


def test_mae8_without_counted_pairs_is_inf_and_shapes_must_match():
    y = np.full((1, 1, 30, 30), 100.0)
    assert METRICS["mae8"].fn(np.zeros_like(y), y) == math.inf
    with pytest.raises(ValueError, match="square"):
        METRICS["mae8"].fn(np.zeros((1, 1, 30, 29)), np.zeros((1, 1, 30, 29)))


def test_one_minus_auroc_pixels_uses_hard_predictions_and_the_ignore_mask():
    out = np.array([[[[2.0, -1.0], [3.0, -2.0]]]])  # predictions 1, 0, 1, 0
    y = np.array([[[[1.0, 1.0], [0.0, 0.0]]]])
    # TPR 1/2, FPR 1/2 -> AUROC (1/2 + 1/2) / 2 = 0.5
    assert METRICS["one_minus_auroc_pixels"].fn(out, y) == pytest.approx(0.5)
    # scores among the positives do not matter: only logit > 0 does
    assert METRICS["one_minus_auroc_pixels"].fn(out * 10, y) == pytest.approx(0.5)
    ignore = np.array([[[[0.0, 0.0], [1.0, 0.0]]]])  # the false positive is ignored
    # predictions 1, 0, 0, 0 -> TPR 1/2, FPR 0 -> AUROC 0.75
    target = np.concatenate([y, ignore], axis=1)  # (1, 2, 2, 2)
    assert METRICS["one_minus_auroc_pixels"].fn(out, target) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="single class"):
        METRICS["one_minus_auroc_pixels"].fn(out, np.zeros_like(y))


def test_one_minus_auroc_labels_averages_defined_labels():
    out = np.array([[0.1, 0.1, 0.3], [0.4, 0.2, 0.1], [0.35, 0.9, 0.2], [0.8, 0.7, 0.4]])
    y = np.array([[0, 0, 1], [0, 0, 1], [1, 1, 1], [1, 1, 1]])
    # label 0: positives 0.35, 0.8 vs negatives 0.1, 0.4 -> 3 of 4 pairs ordered = 0.75;
    # label 1: 1.0; label 2: one class only, skipped
    assert METRICS["one_minus_auroc_labels"].fn(out, y) == pytest.approx(1 - (0.75 + 1.0) / 2)


def test_one_minus_map_averages_classes_with_positives():
    out = np.array([[0.9, 0.2, 0.5], [0.8, 0.9, 0.6], [0.3, 0.1, 0.7]])
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    # class 0: ranks 1 (pos, precision 1), 2 (neg), 3 (pos, precision 2/3) -> AP = (1 + 2/3) / 2
    # class 1: the positive ranks first -> AP 1; class 2: no positive, skipped
    assert METRICS["one_minus_map"].fn(out, y) == pytest.approx(1 - ((1 + 2 / 3) / 2 + 1) / 2)


def test_one_minus_macro_f1_by_hand():
    targets = np.array([0, 0, 1, 1, 2, 3])
    outputs = np.eye(4)[[0, 1, 1, 1, 2, 2]]
    # F1: class 0: P 1, R 1/2 -> 2/3; class 1: P 2/3, R 1 -> 4/5; class 2: P 1/2, R 1 -> 2/3;
    # class 3: 0
    expected = 1 - (2 / 3 + 4 / 5 + 2 / 3 + 0) / 4
    assert METRICS["one_minus_macro_f1"].fn(outputs, targets) == pytest.approx(expected)
    # classes in neither targets nor predictions do not count: F1 2/3 and 0 -> 1 - 1/3
    assert METRICS["one_minus_macro_f1"].fn(np.eye(4)[[0, 1]], np.array([0, 0])) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- task losses

LOG2 = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _loss(name: str, pred, target) -> float:
    return TASK_LOSSES[name](torch.tensor(pred), torch.tensor(target)).item()


def test_cross_entropy_and_focal_by_hand():
    logits = [[0.0, math.log(3.0)]]  # softmax (1/4, 3/4)
    assert TASK_LOSSES["cross_entropy"](torch.tensor(logits), torch.tensor([1])).item() == pytest.approx(
        -math.log(0.75), rel=1e-6)
    # ORCA's FocalLoss(alpha=1) keeps gamma = 0: -log(p_y + 1e-9)
    assert TASK_LOSSES["focal"](torch.tensor(logits), torch.tensor([1])).item() == pytest.approx(
        -math.log(0.75), rel=1e-6)
    two = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    # sample 1: p_0 = e^2 / (e^2 + 1 + e^-1); sample 2: 1/3
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    expected = (-math.log(p0) + math.log(3)) / 2
    assert TASK_LOSSES["focal"](two, labels).item() == pytest.approx(expected, rel=1e-6)


def test_mse_by_hand():
    assert _loss("mse", [[1.0, 3.0]], [[0.0, 0.0]]) == pytest.approx(5.0)


def test_bce_variants_by_hand():
    # logit 0, label 1: log 2; logit 2, label 0: softplus(2)
    assert _loss("bce", [[0.0, 2.0]], [[1.0, 0.0]]) == pytest.approx((LOG2 + softplus(2.0)) / 2, rel=1e-6)
    # positives weighted 10: (10 log 2 + log 2) / 2
    assert _loss("bce_pos10", [[0.0, 0.0]], [[1.0, 0.0]]) == pytest.approx(5.5 * LOG2, rel=1e-6)
    # positives weighted 4: logit 1 label 1 -> 4 softplus(-1); logit -1 label 0 -> softplus(-1)
    assert _loss("bce_pos4", [[1.0, -1.0]], [[1.0, 0.0]]) == pytest.approx(
        (4 * softplus(-1.0) + softplus(-1.0)) / 2, rel=1e-6)


def test_bce_ignore_mask_zeroes_ignored_pixels_as_orca():
    logits = torch.tensor([[[[3.0, -2.0]]]], requires_grad=True)  # (1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 1.0]]], [[[1.0, 0.0]]]]).reshape(1, 2, 1, 2)  # labels, ignore
    loss = TASK_LOSSES["bce_ignore_mask"](logits, target)
    # ignored pixel: logit 0, label 0 -> log 2; kept pixel: logit -2, label 1 -> softplus(2)
    assert loss.item() == pytest.approx((LOG2 + softplus(2.0)) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 0, 0, 0] == 0 and logits.grad[0, 0, 0, 1] != 0
    # without an ignore channel it is plain BCE
    plain = TASK_LOSSES["bce_ignore_mask"](logits.detach(), target[:, :1])
    assert plain.item() == pytest.approx((softplus(-3.0) + softplus(2.0)) / 2, rel=1e-6)


def test_relative_l2_and_nrmse_losses_by_hand():
    assert _loss("relative_l2", [[3.0, 4.0], [1.0, 0.0]], [[0.0, 5.0], [2.0, 0.0]]) == pytest.approx(
        (math.sqrt(10) / 5 + 0.5) / 2, rel=1e-6)
    assert _loss("nrmse", [[[1.0, 1.0], [0.0, 0.0]]], [[[1.0, 3.0], [10.0, 10.0]]]) == pytest.approx(
        (math.sqrt(2 / 5) + 1.0) / 2, rel=1e-6)


@pytest.mark.parametrize("name", sorted(TASK_LOSSES))
def test_losses_give_gradients(name):
    if name in ("cross_entropy", "focal"):
        pred, target = torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 2])
    elif name == "bce_ignore_mask":
        pred, target = torch.zeros(2, 1, 2, 2, requires_grad=True), torch.zeros(2, 2, 2, 2)
        target[:, 0, 0, 0] = 1.0
    else:
        pred, target = torch.zeros(2, 1, 4, requires_grad=True), torch.ones(2, 1, 4)
    TASK_LOSSES[name](pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
