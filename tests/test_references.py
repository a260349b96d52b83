"""Independent references for code that was only checked against itself (issue #13, point 7):
values derived by hand in the comments, or by a formula written out in the test, never by the
function under test or a helper it uses.

Covered: PaRe's k schedules (interior epochs, the public code's linear formula, rounding), the
sign and size of PaRe's straight-through relaxed top-k gradient, ORCA's class-frequency-weighted
stage-1 objective (by hand on a line, and against POT), the Sinkhorn OTDD written out
with POT, PaRe's and ORCA's paper settings typed in, and MoNA's alignment and uniformity
losses on points at known angles.
"""
from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from test_orca import _brute_force_otdd, _labelled_clouds

from trainables.losses.alignment import alignment_loss, uniformity_loss
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


# ---- PaRe: more of the k schedules -------------------------------------------------------------
# k_at(epoch, n_epochs, N, family, start, end) = round(f(t) * N), t = epoch / (n_epochs - 1), f as
# documented in trainables.pare.schedule_fraction (formulas in HAND_K's comments above). The cases
# avoid products ending in exactly .5, where the rounding is not pinned down.
N, START, END = 100, 0.8, 0.2


def test_step_schedule_with_nine_epochs_by_hand():
    """t = e / 8, L = min(floor(e / 2), 3): 0, 0, 1, 1, 2, 2, 3, 3, 3 (the last level keeps the
    final epoch t = 1 as well, so it lasts one epoch longer than the others)."""
    assert [k_at(e, 9, N, "step", START, END) for e in range(9)] == [80, 80, 60, 60, 40, 40, 20, 20, 20]


def test_linear_schedule_matches_the_public_formula_shifted_by_one_epoch():
    """Public code (BIT-DA/PaRe main_PaRe.py): k = int(begin_num - end_num * ep / epochs), with
    begin_num = 2000, end_num = 1500 of N = 3136, epochs = 60. It never reaches 500 (documented
    deviation); ours reaches k_end at the last epoch, so our n_epochs = E + 1 equals the public
    formula with epochs = E at every epoch (all values 2000 - 25 ep are integers, so int() and
    round() agree)."""
    start, end = 2000 / 3136, 500 / 3136
    public = [int(2000 - 1500 * ep / 60) for ep in range(61)]
    assert public[:3] == [2000, 1975, 1950] and public[59:] == [525, 500]
    assert [k_at(ep, 61, 3136, "linear", start, end) for ep in range(61)] == public
    # Same number of epochs (60): the public schedule stops at 525 (ep 59), ours at 500; in the
    # middle, ep 30: public 2000 - 750 = 1250, ours 2000 - 1500 * 30/59 = 1237.29 -> 1237.
    assert k_at(59, 60, 3136, "linear", start, end) == 500
    assert k_at(30, 60, 3136, "linear", start, end) == 1237
    # 1-D public code (main_PaRe_1d.py): k = int(seq_num - seq_num * ep / epochs), seq_num = 32
    # source tokens, ECG's N = 50 target tokens (k_start = 32/50 = 0.64, k_end 0); epochs = 8:
    # 32 - 4 ep = 32, 28, ..., 4, 0 = ours over 9 epochs.
    assert [k_at(ep, 9, 50, "linear", 0.64, 0.0) for ep in range(9)] == [32 - 4 * ep for ep in range(9)]


def test_k_is_rounded_not_truncated():
    """N = 100, 8 epochs, 0.8 -> 0.2: k = 80 - 60 e / 7. e = 2: 62.857 -> 63 (int() gives 62);
    e = 3: 54.286 -> 54; e = 5: 37.143 -> 37; e = 6: 28.571 -> 29 (int() gives 28)."""
    ks = [k_at(e, 8, N, "linear", START, END) for e in range(8)]
    assert [ks[2], ks[3], ks[5], ks[6]] == [63, 54, 37, 29]


# ---------------------------------------------------------------- PaRe: relaxed top-k gradient
def _gumbel(shape, seed: int) -> torch.Tensor:
    """Standard Gumbel samples -log(-log(u)), u ~ U(0, 1) drawn on CPU in float32 from a
    generator seeded ``seed`` (as relaxed_topk_mask's docstring says it draws them)."""
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return -torch.log(-torch.log(u))


def test_relaxed_topk_gradient_is_the_soft_weights_positive_slope():
    """d mask_i / d s_i > 0 and d mask_i / d s_j = 0 (j != i); the diagonal equals the slope of the
    documented soft weight sigmoid((z_i - t) / tau), z = s + Gumbel, t the midpoint between the
    k-th and (k+1)-th largest z, here by a central finite difference of that formula (no autograd
    of the library's code in the reference)."""
    b, n, k, tau, seed = 2, 6, 2, 0.9, 7
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.3, 0.2], [0.2, 0.4, 0.8, 0.6, 0.1, 0.9]],
                          dtype=torch.float64, requires_grad=True)
    mask = relaxed_topk_mask(scores, k, tau, torch.Generator().manual_seed(seed))

    z = scores.detach() + _gumbel((b, n), seed).to(torch.float64)  # (B, N)
    ordered = z.sort(dim=1, descending=True).values
    t = (ordered[:, k - 1] + ordered[:, k]) / 2  # (B,)
    top = torch.zeros(b, n, dtype=torch.float64)
    top[z >= t[:, None]] = 1.0  # the k largest z of each row
    assert torch.equal(mask.detach(), top) and top.sum(1).tolist() == [k, k]

    def soft(zi: float, ti: float) -> float:
        return 1.0 / (1.0 + math.exp(-(zi - ti) / tau))

    h = 1e-6
    for row in range(b):
        for i in range(n):
            (grad,) = torch.autograd.grad(mask[row, i], scores, retain_graph=True)
            zi, ti = z[row, i].item(), t[row].item()
            slope = (soft(zi + h, ti) - soft(zi - h, ti)) / (2 * h)
            assert slope > 0
            assert grad[row, i].item() == pytest.approx(slope, rel=1e-6)  # positive: raising s_i raises it
            off = grad.clone()
            off[row, i] = 0.0
            assert not off.any()  # diagonal Jacobian: the threshold is held constant


def test_raising_a_score_never_deselects_it_and_raises_its_selection_rate():
    """Finite change with the Gumbel noise held fixed (same generator seed): 4,000 rows of the
    same 6 scores, each row its own noise. Raising token 2's score by 0.1 can only move token 2
    into a row's top 3, never out, and does so in some rows: its selection rate (the expected
    forward mask, whose slope the straight-through gradient stands in for) rises, and no other
    token's rises (k per row is fixed)."""
    rows, n, k, i = 4000, 6, 3, 2
    base = torch.tensor([0.6, 0.5, 0.4, 0.3, 0.2, 0.1], dtype=torch.float64).expand(rows, n).clone()
    raised = base.clone()
    raised[:, i] += 0.1
    before = relaxed_topk_mask(base, k, 0.9, torch.Generator().manual_seed(11))  # (rows, n)
    after = relaxed_topk_mask(raised, k, 0.9, torch.Generator().manual_seed(11))
    assert (after[:, i] >= before[:, i]).all()  # monotone for every fixed noise draw
    assert after[:, i].sum() > before[:, i].sum()  # and strictly more often selected overall
    others = [j for j in range(n) if j != i]
    assert (after[:, others] <= before[:, others]).all()


# ------------------------------------------------------- ORCA: class-frequency-weighted OTDD
def test_orca_class_weights_are_frequencies_over_the_whole_training_set():
    """6 samples of class 0, 2 of class 1, 1 of class 2 (N = 9): weights 6/9 and 2/9; class 2 has
    a single sample and is skipped (ORCA: ``if feats.shape[0] > 1``), without renormalising."""
    labels = np.array([1, 0, 0, 2, 0, 1, 0, 0, 0])
    classes = group_by_class(labels)
    assert classes.weights == pytest.approx((6 / 9, 2 / 9))
    assert [m.tolist() for m in classes.members] == [[1, 2, 4, 6, 7, 8], [0, 5]]
    assert group_by_class(np.array([0] * 6 + [1] * 2)).weights == pytest.approx((6 / 8, 2 / 8))


def test_orca_objective_by_hand_on_a_line():
    """1-D features. Source: class 0 at {-1, 1}, class 1 at {3, 5}. Target: 6 samples of class 0
    at {0, 1, 2, 3, 4, 5} and 2 of class 1 at {2, 6}: weights 6/8 and 2/8. Ground cost
    c = (x - x')^2 / 2 + W(y_s), W = exact OT (same cost, uniform weights) between source class
    y_s and the target class (each target class is labelled as one class, as ORCA). In 1-D the
    optimal plan of a convex cost is the monotone (quantile) coupling, and W(y_s) is constant
    along each source row, so it adds sum_i a_i W(y_i) whatever the plan.

    Target class 0 (mass 1/6 each):
      W(S0) = -1 -> {0,1,2}, 1 -> {3,4,5}: (1/6)[(1+4+9)/2 + (4+9+16)/2] = 43/12
      W(S1) = 3 -> {0,1,2}, 5 -> {3,4,5}: (1/6)[(9+4+1)/2 + (4+1+0)/2] = 19/12
      label part (1/2)(43/12) + (1/2)(19/12) = 31/12
      features: {-1,1,3,5} (1/4 each) vs {0..5}: -1 -> 0 (1/6, cost 1/2), 1 (1/12, 2);
      1 -> 1 (1/12, 0), 2 (1/6, 1/2); 3 -> 3 (1/6, 0), 4 (1/12, 1/2); 5 -> 4 (1/12, 1/2),
      5 (1/6, 0): 1/12 + 2/12 + 1/12 + 1/24 + 1/24 = 5/12.      OTDD_0 = 31/12 + 5/12 = 3.
    Target class 1 (mass 1/2 each):
      W(S0) = (9/2 + 25/2) / 2 = 8.5 (-1 -> 2, 1 -> 6); W(S1) = (1/2 + 1/2) / 2 = 0.5
      label part (8.5 + 0.5) / 2 = 4.5; features: -1, 1 -> 2 and 3, 5 -> 6:
      (1/4)(9/2 + 1/2 + 9/2 + 1/2) = 2.5.                          OTDD_1 = 4.5 + 2.5 = 7.
    Objective: (6/8) 3 + (2/8) 7 = 2.25 + 1.75 = 4 (the unweighted mean would be 5, the sum 10).
    """
    xs = torch.tensor([[-1.0], [1.0], [3.0], [5.0]], dtype=torch.float64)
    ys = torch.tensor([0, 0, 1, 1])
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 0])  # 6 of class 0, 2 of class 1, interleaved
    xt = torch.tensor([[0.0], [1.0], [2.0], [2.0], [3.0], [4.0], [6.0], [5.0]], dtype=torch.float64)
    classes = group_by_class(labels)
    assert classes.weights == pytest.approx((0.75, 0.25))
    cache = SourceCache.build(xs, ys, "emd")
    positions = torch.as_tensor(labels)
    got = weighted_class_otdd(xt, positions, classes.weights, cache)
    assert got.item() == pytest.approx(4.0, abs=1e-12)
    # Each class alone (weight 1 for it, 0 for the other): the per-class OTDDs 3 and 7.
    assert weighted_class_otdd(xt, positions, (1.0, 0.0), cache).item() == pytest.approx(3.0, abs=1e-12)
    assert weighted_class_otdd(xt, positions, (0.0, 1.0), cache).item() == pytest.approx(7.0, abs=1e-12)
    # A class with a single sample in the batch is skipped: only (6/8) * 3 remains.
    single = torch.tensor([0, 0, 0, 1, 0, 0, 5, 0])  # position 5: no weight, never visited
    assert weighted_class_otdd(xt, single, (0.75, 0.25), cache).item() == pytest.approx(2.25, abs=1e-12)


def _half_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) ground cost ||a_i - b_j||^2 / 2 by broadcasting (not the library's Gram form)."""
    return 0.5 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _emd(cost: np.ndarray) -> float:
    n, m = cost.shape
    return float(ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), cost))


def _single_class_otdd(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray) -> float:
    """OTDD between labelled source and a target labelled as one class: W(k) by exact OT between
    source class k and the whole target, then exact OT under (x - x')^2 / 2 + W(y_s)."""
    w = {k: _emd(_half_sq(xs[ys == k], xt)) for k in np.unique(ys)}
    cost = _half_sq(xs, xt) + np.array([w[k] for k in ys])[:, None]  # (n, m)
    return _emd(cost)


def test_orca_objective_equals_weighted_per_class_otdds_computed_with_pot():
    """2-D clouds: the batch holds 3 samples per class (ORCA's per-class cap), while the weights
    are the training set's frequencies, 6/8 and 2/8."""
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.normal(c, 0.5, size=(4, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    ys = np.repeat(np.arange(3), 4)
    xt = rng.normal(1.0, 1.0, size=(6, 2))
    positions = np.array([1, 0, 0, 1, 0, 1])  # shuffled, as sample_per_class returns them
    weights = group_by_class(np.array([0] * 6 + [1] * 2)).weights  # the training set's classes
    expected = (6 / 8) * _single_class_otdd(xs, ys, xt[positions == 0]) \
        + (2 / 8) * _single_class_otdd(xs, ys, xt[positions == 1])
    cache = SourceCache.build(torch.as_tensor(xs), torch.as_tensor(ys), "emd")
    got = weighted_class_otdd(torch.as_tensor(xt), torch.as_tensor(positions), weights, cache)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def _entropic_ot(cost: np.ndarray, eps: float) -> float:
    """OT_eps = <P, C> + eps KL(P | a x b), uniform a, b, by POT's generic solver run to 1e-13."""
    n, m = cost.shape
    return float(ot.solve(cost, np.full(n, 1 / n), np.full(m, 1 / m), reg=eps, reg_type="KL",
                          max_iter=200_000, tol=1e-13).value)


def test_sinkhorn_otdd_equals_the_debiased_divergence_written_out():
    """The ``"sinkhorn"`` solver (trainables.ot.otdd docstring): eps = reg x the source's total
    population variance; W(c, c') = S_eps(c, c') = OT_eps(c, c') - OT_eps(c, c)/2 - OT_eps(c', c')/2
    between class clouds (cost ||x - x'||^2/2); value S_eps(alpha, beta) under the label-aware cost
    ||x - x'||^2/2 + W(y, y'), the self terms with source-source and target-target W. Every
    OT_eps here is POT's generic solver on cost matrices built in this test (the library solves
    the self terms with its own symmetric iteration)."""
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.normal(c, 0.7, size=(5, 2)) for c in ((0, 0), (2, 0), (0, 2))])
    ys = np.repeat(np.arange(3), 5)
    xt = rng.normal(1.0, 1.0, size=(8, 2))
    yt = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    reg = 0.5  # POT's generic solver takes minutes on the self terms at reg 0.1 (measured 375 s)
    eps = reg * xs.var(axis=0).sum()

    def divergence(xa, xb):
        return _entropic_ot(_half_sq(xa, xb), eps) - _entropic_ot(_half_sq(xa, xa), eps) / 2 \
            - _entropic_ot(_half_sq(xb, xb), eps) / 2

    def label_cost(xa, ya, xb, yb):
        w = np.array([[divergence(xa[ya == i], xb[yb == j]) for j in np.unique(yb)] for i in np.unique(ya)])
        return _half_sq(xa, xb) + w[ya][:, yb]  # (n, m)

    expected = _entropic_ot(label_cost(xs, ys, xt, yt), eps) - _entropic_ot(label_cost(xs, ys, xs, ys), eps) / 2 \
        - _entropic_ot(label_cost(xt, yt, xt, yt), eps) / 2
    cache = SourceCache.build(torch.as_tensor(xs), torch.as_tensor(ys), "sinkhorn", reg)
    assert cache.eps == pytest.approx(eps, rel=1e-12)
    got = cache.distance(torch.as_tensor(xt), torch.as_tensor(yt)).item()
    assert got == pytest.approx(expected, rel=1e-7)  # measured 1e-10


def test_pare_and_orca_paper_settings_by_hand():
    """tests/test_paper_spaces.py compares ``defaults`` with ``paper_settings``, which PaRe's and
    ORCA's spaces build from the same helpers; here the public values, typed in.
    PaRe 2-D (main_PaRe.py, spherical_PaRe.yaml): linear, begin_num 2000 and begin_num - end_num
    = 500 of 3136 tokens, ``if ep < 10`` warm-up, SubsetOperator tau 0.9. 1-D (main_PaRe_1d.py,
    ecg_PaRe.yaml): k from seq_num = 32 source tokens to 0 of ECG's N = 1000 / 20 = 50 target
    tokens, so k_start = 32/50 = 0.64; ``if ep < 5``. PSICOV has 10 epochs: warm-up min(10, 10) = 10.
    ORCA: embedder lr = 10 x the stage-2 lr when that is <= 1e-3 (spherical 1e-4 -> 1e-3; cosmic
    1e-3 -> 1e-2, the boundary)."""
    from trainables.registry import get_method, get_task
    from tuner.spec import space_defaults

    def paper(method, task):
        return get_method(method).paper_settings(space_defaults(get_task(task), "paper"))

    keys = ("k_schedule", "k_start", "k_end", "warmup_epochs", "tau")
    assert tuple(paper("pare", "spherical")[k] for k in keys) == ("linear", 2000 / 3136, 500 / 3136, 10, 0.9)
    assert tuple(paper("pare", "ecg")[k] for k in keys) == ("linear", 0.64, 0.0, 5, 0.9)
    assert paper("pare", "psicov")["warmup_epochs"] == 10
    assert paper("orca", "spherical")["stage1_lr"] == pytest.approx(1e-3, rel=1e-12)
    assert paper("orca", "cosmic")["stage1_lr"] == pytest.approx(1e-2, rel=1e-12)


# ---------------------------------------------------------- MoNA: alignment and uniformity
# On unit vectors at angles a and b: d = ||f_a - f_b||^2 = 2 - 2 cos(a - b).
# L_align = mean over ordered same-class pairs i != j of d_ij;
# L_uniform = log mean over ordered pairs i != j of exp(-t d_ij), t = 2.
def _at_angles(*degrees: float) -> torch.Tensor:
    rad = [math.radians(d) for d in degrees]
    return torch.tensor([[math.cos(r), math.sin(r)] for r in rad], dtype=torch.float64)


def test_square_of_four_points():
    """0, 90, 180, 270 degrees: neighbours d = 2 - 2 cos 90 = 2, opposite d = 2 - 2 cos 180 = 4.
    Of the 12 ordered pairs, 8 are neighbours and 4 opposite:
    L_uniform = log((8 e^-4 + 4 e^-8) / 12) = log((2 e^-4 + e^-8) / 3) = log(0.0369667 / 3) = -4.396349
    Labels 0,0,1,1: same-class pairs are neighbours -> 2; labels 0,1,0,1: opposite -> 4; one class
    for all: (8 * 2 + 4 * 4) / 12 = 8/3."""
    f = _at_angles(0, 90, 180, 270)
    assert uniformity_loss(f).item() == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3), rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(2.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 1, 0, 1])).item() == pytest.approx(4.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([3, 3, 3, 3])).item() == pytest.approx(8 / 3, rel=1e-12)


def test_equilateral_triangle():
    """0, 120, 240 degrees: every d = 2 - 2 cos 120 = 3. L_uniform = log e^-6 = -6 (t = 2), -3
    (t = 1); any same-class pair gives L_align = 3."""
    f = _at_angles(0, 120, 240)
    assert uniformity_loss(f).item() == pytest.approx(-6.0, rel=1e-12)
    assert uniformity_loss(f, t=1.0).item() == pytest.approx(-3.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 0, 1])).item() == pytest.approx(3.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 1, 2])).item() == 0.0  # no same-class pair


def test_three_points_at_unequal_angles():
    """0, 60, 180 degrees: d(0, 60) = 2 - 2 cos 60 = 1, d(0, 180) = 4, d(60, 180) = 2 - 2 cos 120 = 3.
    L_uniform = log((2 e^-2 + 2 e^-8 + 2 e^-6) / 6) = log((e^-2 + e^-6 + e^-8) / 3) = log(0.1381495 / 3) = -3.078031
    L_align: labels 0,0,1 -> 1; 0,1,0 -> 4; 1,0,0 -> 3; all one class -> (1 + 4 + 3) / 3 = 8/3."""
    f = _at_angles(0, 60, 180)
    assert uniformity_loss(f).item() == pytest.approx(
        math.log((math.exp(-2) + math.exp(-6) + math.exp(-8)) / 3), rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 0, 1])).item() == pytest.approx(1.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 1, 0])).item() == pytest.approx(4.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([1, 0, 0])).item() == pytest.approx(3.0, rel=1e-12)
    assert alignment_loss(f, torch.tensor([5, 5, 5])).item() == pytest.approx(8 / 3, rel=1e-12)


def test_orthonormal_basis_in_three_dimensions():
    """e1, e2, e3, -e1: d(e_i, e_j) = 2, d(e1, -e1) = 4, d(e2, -e1) = d(e3, -e1) = 2. Ordered
    pairs: 10 with d = 2, 2 with d = 4. t = 1/2: log((10 e^-1 + 2 e^-2) / 12) = log(3.9494650 / 12) = -1.111327
    Labels 0,1,1,0: pairs (e2, e3) d = 2 and (e1, -e1) d = 4 -> (2 + 4) / 2 = 3."""
    f = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]], dtype=torch.float64)
    assert uniformity_loss(f, t=0.5).item() == pytest.approx(math.log((10 * math.exp(-1) + 2 * math.exp(-2)) / 12),
                                                         rel=1e-12)
    assert alignment_loss(f, torch.tensor([0, 1, 1, 0])).item() == pytest.approx(3.0, rel=1e-12)
