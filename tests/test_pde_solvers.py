"""PDE solvers against exact solutions, and the generated (mini) PDE tasks: seeds and cache."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trainables.metrics import nrmse
from trainables.registry import TASKS
from trainables.tasks import pdebench
from trainables.tasks.data import denormalize
from trainables.tasks.pde_solvers import (
    advect,
    burgers,
    cell_centres,
    darcy_matrix,
    random_darcy_coefficients,
    sine_initial_conditions,
    solve_darcy,
)

# ------------------------------------------------------------------------------- advection


def _sines(x: np.ndarray) -> np.ndarray:
    """A band-limited periodic function on [0, 1): modes 1, 3 and 7 plus a constant."""
    return 0.3 + np.sin(2 * np.pi * x + 0.4) + 0.5 * np.cos(6 * np.pi * x) - 0.2 * np.sin(14 * np.pi * x)


@pytest.mark.parametrize("n", [64, 65])
def test_advect_matches_the_exact_shift(n):
    x = cell_centres(n)
    beta, t = 0.4, 2.0  # shift 0.8, not a whole number of cells
    np.testing.assert_allclose(advect(_sines(x), beta, t), _sines((x - beta * t) % 1.0), atol=1e-12)


def test_advect_by_whole_cells_is_a_roll_and_a_period_is_the_identity():
    rng = np.random.default_rng(0)
    u0 = rng.normal(size=(3, 32))  # not band-limited: still exact for whole-cell shifts
    np.testing.assert_allclose(advect(u0, beta=0.5, t=3 / 16), np.roll(u0, 3, axis=-1), atol=1e-12)
    np.testing.assert_allclose(advect(u0, beta=0.4, t=2.5), u0, atol=1e-12)  # shift 1.0
    np.testing.assert_allclose(advect(u0, beta=0.4, t=0.0), u0, atol=1e-14)


# --------------------------------------------------------------------------------- Burgers


def _cole_hopf(x: np.ndarray, t: float, nu: float) -> np.ndarray:
    """Exact periodic Burgers solution u = -2 eps phi_x / phi, phi_t = eps phi_xx, eps = nu/pi.

    phi = 1 + 0.6 e^{-eps (2pi)^2 t} cos(2pi x + 0.1) + 0.3 e^{-eps (4pi)^2 t} cos(4pi x + 1).
    """
    eps = nu / np.pi
    d1, d2 = np.exp(-eps * (2 * np.pi) ** 2 * t), np.exp(-eps * (4 * np.pi) ** 2 * t)
    phi = 1 + 0.6 * d1 * np.cos(2 * np.pi * x + 0.1) + 0.3 * d2 * np.cos(4 * np.pi * x + 1.0)
    phi_x = (-0.6 * d1 * 2 * np.pi * np.sin(2 * np.pi * x + 0.1)
             - 0.3 * d2 * 4 * np.pi * np.sin(4 * np.pi * x + 1.0))
    return -2 * eps * phi_x / phi


@pytest.mark.parametrize("nu", [0.1, 1.0])
def test_burgers_matches_cole_hopf(nu):
    x = cell_centres(128)
    u = burgers(_cole_hopf(x, 0.0, nu), nu, 0.3)
    np.testing.assert_allclose(u, _cole_hopf(x, 0.3, nu), atol=1e-7)
    assert np.abs(_cole_hopf(x, 0.3, nu) - _cole_hopf(x, 0.0, nu)).max() > 1e-2  # it moved


def test_burgers_time_stepping_is_fourth_order():
    nu, t = 0.1, 0.3
    x = cell_centres(128)
    errors = [np.abs(burgers(_cole_hopf(x, 0.0, nu), nu, t, steps=s) - _cole_hopf(x, t, nu)).max()
              for s in (16, 32, 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(3.6 < p < 4.4 for p in orders), (errors, orders)


def test_burgers_conserves_the_mean_and_does_not_grow():
    x = cell_centres(128)
    u0 = sine_initial_conditions(50, x, np.random.default_rng(3))
    u = burgers(u0, 1.0, 0.05)
    np.testing.assert_allclose(u.mean(axis=1), u0.mean(axis=1), atol=1e-12)
    assert (np.abs(u).max(axis=1) <= np.abs(u0).max(axis=1) + 1e-9).all()  # maximum principle
    assert np.abs(u - u0).max() > 0.1


# ----------------------------------------------------------------------------------- Darcy


def _reference_residual(a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """-div(a grad u) at interior nodes by explicit loops (harmonic-mean faces), h = 1/(n-1)."""
    n = a.shape[0]
    h2 = (1.0 / (n - 1)) ** 2
    out = np.zeros((n - 2, n - 2))
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            total = 0.0
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                face = 2 * a[i, j] * a[i + di, j + dj] / (a[i, j] + a[i + di, j + dj])
                total += face * (u[i, j] - u[i + di, j + dj])
            out[i - 1, j - 1] = total / h2
    return out


def test_darcy_solution_satisfies_the_discrete_equations():
    a = random_darcy_coefficients(1, 9, np.random.default_rng(0))[0]
    u = solve_darcy(a, 0.1)
    assert u.shape == (9, 9)
    assert (u[0] == 0).all() and (u[-1] == 0).all() and (u[:, 0] == 0).all() and (u[:, -1] == 0).all()
    np.testing.assert_allclose(_reference_residual(a, u), 0.1, rtol=1e-9)
    assert (u[1:-1, 1:-1] > 0).all()  # positive source, zero boundary: maximum principle
    matrix = darcy_matrix(a)
    assert abs(matrix - matrix.T).max() == 0.0


def _manufactured(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a = 1 + x^2 + y, u = sin(pi x) sin(pi y), f = -div(a grad u) on the vertex grid."""
    x, y = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    a = 1 + x**2 + y
    u = np.sin(np.pi * x) * np.sin(np.pi * y)
    u_x = np.pi * np.cos(np.pi * x) * np.sin(np.pi * y)
    u_y = np.pi * np.sin(np.pi * x) * np.cos(np.pi * y)
    f = -(2 * x * u_x + 1.0 * u_y - 2 * np.pi**2 * a * u)  # a_x = 2x, a_y = 1, lap u = -2 pi^2 u
    return a, f, u


def test_darcy_converges_at_second_order():
    errors = []
    for side in (9, 17, 33):
        a, f, exact = _manufactured(side)
        errors.append(np.abs(solve_darcy(a, f) - exact).max())
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.3 for p in orders), (errors, orders)
    assert errors[-1] < 2e-3


def test_darcy_rejects_bad_coefficients():
    with pytest.raises(ValueError, match="positive"):
        solve_darcy(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((5, 4)))


# ------------------------------------------------------------------------- random inputs


def test_darcy_coefficients_are_two_valued_and_seeded():
    a = random_darcy_coefficients(20, 17, np.random.default_rng(5))
    assert a.shape == (20, 17, 17)
    assert set(np.unique(a)) == {3.0, 12.0}
    assert 0.2 < (a == 12.0).mean() < 0.8  # the zero-mean field is positive about half the time
    np.testing.assert_array_equal(a, random_darcy_coefficients(20, 17, np.random.default_rng(5)))
    assert not np.array_equal(a, random_darcy_coefficients(20, 17, np.random.default_rng(6)))


def test_sine_initial_conditions_are_pdebench_like():
    x = cell_centres(256)
    u = sine_initial_conditions(400, x, np.random.default_rng(1))
    assert u.shape == (400, 256) and np.isfinite(u).all()
    assert np.abs(u).max() <= 4.0  # sum of 4 amplitudes in [0, 1)
    # Modes 1..4 drawn at most twice: wave numbers <= 8, unless |.| or the window (~19 %) applied.
    spectrum = np.abs(np.fft.rfft(u, axis=1))
    band_limited = spectrum[:, 9:].max(axis=1) < 1e-9 * spectrum.max(axis=1)
    assert 0.7 < band_limited.mean() < 0.95
    assert np.abs(u.mean(axis=1)).max() > 0.1  # undrawn modes add constants, as in PDEBench
    np.testing.assert_array_equal(u, sine_initial_conditions(400, x, np.random.default_rng(1)))


# ------------------------------------------------------------------------- mini tasks
# TASKS.get, not get_task: importing pdebench registered these; get_task would import every
# method and backbone (tens of seconds on a busy 2-CPU machine).


def get_task(name: str):
    return TASKS.get(name)


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory):
    """One data root where each mini task is generated once for the module (seed 0)."""
    return tmp_path_factory.mktemp("pde_mini")


@pytest.mark.parametrize("task, shape", [("advection", (1, 256)), ("burgers", (1, 256)),
                                         ("darcy", (1, 33, 33))])
def test_mini_tasks_have_the_documented_shapes(task, shape, mini_root):
    raw = get_task(task).loader(mini_root, "mini", 0)
    assert raw.x_train.shape == raw.y_train.shape == (900, *shape)
    assert raw.x_test.shape == raw.y_test.shape == (100, *shape)
    assert all(a.dtype == np.float32 for a in (raw.x_train, raw.y_train, raw.x_test, raw.y_test))
    assert raw.num_outputs == 1 and raw.source.startswith(f"generated:{task}(") and "seed=0" in raw.source
    assert (raw.y_std is not None) == (task == "darcy")  # only Darcy rescales its targets
    assert (mini_root / "generated" / f"pde_{task}_seed0.npz").is_file()


def test_mini_advection_target_is_the_shifted_input(mini_root):
    raw = get_task("advection").loader(mini_root, "mini", 0)
    np.testing.assert_allclose(raw.y_test, advect(raw.x_test.astype(np.float64), 0.4, 2.0), atol=1e-5)


def test_mini_darcy_solves_the_darcy_problem(mini_root):
    raw = get_task("darcy").loader(mini_root, "mini", 0)
    # Targets come divided by their training RMS (one number); y_std undoes it.
    assert raw.y_mean.shape == raw.y_std.shape == (1, 1, 1) and (raw.y_mean == 0).all()
    np.testing.assert_allclose(np.sqrt(np.mean(raw.y_train.astype(np.float64) ** 2)), 1.0, rtol=1e-5)
    u = denormalize(raw.y_test, raw.y_mean, raw.y_std)[0, 0].astype(np.float64)
    a = raw.x_test[0, 0].astype(np.float64)
    assert set(np.unique(a)) <= {3.0, 12.0}
    np.testing.assert_allclose(_reference_residual(a, u), 0.1, rtol=1e-4)  # f = beta = 0.1
    # nRMSE is the same on scaled and physical targets.
    pred = raw.y_test * 0.9 + 0.01
    assert nrmse(pred, raw.y_test) == pytest.approx(
        nrmse(denormalize(pred, raw.y_mean, raw.y_std), denormalize(raw.y_test, raw.y_mean, raw.y_std)),
        rel=1e-5)


def test_mini_generation_is_deterministic_by_seed(tmp_path):
    load = get_task("advection").loader
    first, again = load(tmp_path / "a", "mini", 3), load(tmp_path / "b", "mini", 3)
    other = load(tmp_path / "c", "mini", 4)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_train, other.x_train)


def test_mini_cache_is_reused_and_rebuilt_when_stale(tmp_path, monkeypatch):
    load = get_task("advection").loader
    made = load(tmp_path, "mini", 0)
    path = pdebench.cache_path(tmp_path, "advection", 0)
    mtime = path.stat().st_mtime_ns

    def refuse(seed):
        raise AssertionError("the cache should have been used")

    mini = pdebench.MINI["advection"]
    monkeypatch.setitem(pdebench.MINI, "advection", dataclasses.replace(mini, generate=refuse))
    cached = load(tmp_path, "mini", 0)
    np.testing.assert_array_equal(cached.x_train, made.x_train)
    assert path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temporary file

    # Other generator parameters make the cache stale: it is regenerated, not trusted.
    calls = []

    def generate(seed):
        calls.append(seed)
        return mini.generate(seed)

    changed = dataclasses.replace(mini, params=mini.params + ",changed", generate=generate)
    monkeypatch.setitem(pdebench.MINI, "advection", changed)
    load(tmp_path, "mini", 0)
    assert calls == [0]
    # A corrupt cache is regenerated too.
    path.write_bytes(b"not an npz")
    load(tmp_path, "mini", 0)
    assert calls == [0, 0]


def test_mini_defaults_exist_only_for_generated_tasks():
    for task in ("advection", "burgers", "darcy"):
        spec = get_task(task)
        assert spec.has_mini and spec.defaults_at("mini") is spec.mini
    for task in ("diffusion-reaction-1d", "diffusion-sorption", "navier-stokes-1d", "shallow-water",
                 "diffusion-reaction-2d"):
        spec = get_task(task)
        assert not spec.has_mini and spec.mini is None
        with pytest.raises(ValueError, match="no embedded"):
            spec.loader("/nonexistent", "mini", 0)
