"""Independent references for code that was only checked against itself (issue #13, point 7):
values derived by hand in the comments, never by the function under test."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_orca import _brute_force_otdd, _labelled_clouds

from trainables.orca import group_by_class, weighted_class_otdd
from trainables.ot.otdd import SourceCache
from trainables.pare import k_at, relaxed_topk_mask

# N = 100 tokens, 5 epochs (t = epoch / 4), k_start 0.8, k_end 0.2; k = round(fraction * N).
HAND_K = {
    # 0.8 - 0.6 t: 0.8, 0.65, 0.5, 0.35, 0.2
    "linear": [80, 65, 50, 35, 20],
    # 0.8 * (0.2 / 0.8)^t = 0.8 * 0.25^t: 0.8, 0.565685, 0.4, 0.282843, 0.2
    "exponential": [80, 57, 40, 28, 20],
    # 0.2 + 0.6 (1 + cos(pi t)) / 2: 0.8, 0.712132, 0.5, 0.287868, 0.2
    "cosine": [80, 71, 50, 29, 20],
    # 4 levels, level = min(floor(4 t), 3) = 0, 1, 2, 3, 3; 0.8 - 0.6 level / 3: 0.8, 0.6, 0.4, 0.2, 0.2
    "step": [80, 60, 40, 20, 20],
}


@pytest.mark.parametrize("family", sorted(HAND_K))
def test_k_schedules_at_every_epoch_by_hand(family):
    assert [k_at(e, 5, 100, family, 0.8, 0.2) for e in range(5)] == HAND_K[family]


def test_relaxed_top_k_raising_a_score_raises_its_selection():
    """Straight-through Gumbel top-k: d mask_i / d score_i > 0 for every token (the gate learns
    to select a token by raising its score), and with the same Gumbel noise a token raised far
    enough is selected."""
    scores = torch.randn(2, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    mask = relaxed_topk_mask(scores, 3, tau=0.9, generator=torch.Generator().manual_seed(1))
    assert mask.sum(1).tolist() == [3.0, 3.0]
    for i in range(10):
        (grad,) = torch.autograd.grad(mask[0, i], scores, retain_graph=True)
        assert grad[0, i] > 0, i  # its own score raises its weight
        assert grad[1].abs().sum() == 0  # rows are independent
    dropped = int(torch.nonzero(mask[0] == 0)[0])
    raised = scores.detach().clone()
    raised[0, dropped] += 100.0
    again = relaxed_topk_mask(raised, 3, tau=0.9, generator=torch.Generator().manual_seed(1))
    assert again[0, dropped] == 1.0


def test_orca_weights_each_class_otdd_by_its_frequency():
    """Unbalanced target: 6 samples of class 0, 2 of class 1 and 1 of class 2 (9 in all).
    ORCA weights each class's OTDD by |class| / N over the whole training set: 6/9 and 2/9;
    class 2 (one sample) is skipped, its weight not redistributed. Each class's OTDD is the
    brute-force one (explicit loops and ot.emd2) with the class labelled as one class."""
    xs, ys = _labelled_clouds(12, 3, 2, 0.0, seed=0)
    xt, _ = _labelled_clouds(9, 1, 2, 1.0, seed=1)
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    classes = group_by_class(labels)
    assert classes.weights == pytest.approx((6 / 9, 2 / 9)) and len(classes.members) == 2
    positions = torch.as_tensor(labels)
    got = weighted_class_otdd(xt, positions, classes.weights, SourceCache.build(xs, ys, "emd"))
    one_class = np.zeros(6, dtype=np.int64)
    expected = (6 / 9 * _brute_force_otdd(xs.numpy(), ys.numpy(), xt[:6].numpy(), one_class)
                + 2 / 9 * _brute_force_otdd(xs.numpy(), ys.numpy(), xt[6:8].numpy(), one_class[:2]))
    assert got.item() == pytest.approx(expected, rel=1e-9)
