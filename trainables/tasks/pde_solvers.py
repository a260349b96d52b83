"""Numerical solvers that generate the embedded ("mini") PDE tasks offline, on a CPU.

Three solvers and the random inputs PDEBench (Takamoto et al., NeurIPS 2022) and FNO (Li et
al., ICLR 2021) draw for them. They are plain functions of numpy arrays so that other tasks
(e.g. NAS-Bench-360's Darcy flow at mini scale) can reuse them.

- ``advect``: u_t + beta u_x = 0 on a periodic interval, solved exactly in Fourier space
  (every mode is multiplied by exp(-i k beta t)): the exact shift u0(x - beta t) of the
  trigonometric interpolant of the sampled u0.
- ``burgers``: PDEBench's Burgers equation u_t + (u^2/2)_x = (nu/pi) u_xx on a periodic
  interval (the nu/pi convention of PDEBench's ``burgers_multi_solution_Hydra.py``), by a
  pseudo-spectral method with the 2/3 de-aliasing rule and the integrating-factor RK4 scheme
  (diffusion integrated exactly, the flux explicitly; cf. Trefethen, *Spectral Methods in
  MATLAB*, 2000, ch. 10).
- ``solve_darcy``: -div(a grad u) = f on the unit square with u = 0 on the boundary, by the
  5-point finite-difference (finite-volume) scheme with harmonic-mean face coefficients on the
  vertex grid, and a sparse direct solve (``scipy.sparse.linalg.splu``).

Random inputs:

- ``sine_initial_conditions``: PDEBench's ``init_multi`` (``data_gen_NLE/utils.py``): a sum
  over k = 1..k_tot of A_k sin(2 pi k m_k x / L + phi_k), where m_k in {0, 1, 2} counts how
  often k was among ``n_draws`` draws (an undrawn k adds the constant A_k sin(phi_k)),
  A_k ~ U[0, 1), phi_k ~ U[0, 2 pi); then |u| with probability 0.1, a random sign, and with
  probability 0.1 a tanh window on [xL, xR], xL ~ U[0.1, 0.45), xR ~ U[0.55, 0.9).
- ``random_darcy_coefficients``: FNO's piecewise-constant coefficients (``GRF.m`` of the
  FNO data generator): a Gaussian random field with covariance (-Laplacian + tau^2)^(-alpha)
  drawn as a cosine series, thresholded to ``high`` where >= 0 and ``low`` elsewhere.

Deviations:
    - Wave numbers use the period L of the grid (2 pi k / L); PDEBench uses
      2 pi k / (x_last - x_first), which is not quite periodic on its own grid.
    - PDEBench integrates advection and Burgers with a second-order finite-volume scheme
      (limited upwind fluxes, CFL-limited steps); we use the spectral schemes above, which
      are exact (advection) or spectrally accurate (Burgers) for the same equations.
    - FNO solves Darcy flow with its own finite-difference code; ours is the standard
      harmonic-mean 5-point scheme (second order for smooth coefficients).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.sparse.linalg

# PDEBench's init_multi (advection and Burgers use k_tot = 4, two draws).
K_TOT = 4
N_DRAWS = 2
P_ABS = 0.1
P_WINDOW = 0.1
WINDOW_LEFT = (0.1, 0.45)
WINDOW_RIGHT = (0.55, 0.9)
WINDOW_WIDTH = 0.01
# RK4's stability interval on the imaginary axis is |h lambda| <= 2.83; CFL 0.5 keeps the
# de-aliased advective modes well inside it (h k_max max|u| <= 0.5 pi (2/3) ~ 1.05).
BURGERS_CFL = 0.5
# FNO's Darcy coefficients: GRF(alpha=2, tau=3), thresholded to 12 / 3.
DARCY_ALPHA = 2.0
DARCY_TAU = 3.0
DARCY_HIGH = 12.0
DARCY_LOW = 3.0


def cell_centres(n: int, length: float = 1.0) -> np.ndarray:
    """The n cell centres (i + 1/2) L / n of a periodic grid on [0, L), as PDEBench's ``xc``.

    >>> cell_centres(4).tolist()
    [0.125, 0.375, 0.625, 0.875]
    """
    if n < 2:
        raise ValueError(f"a grid needs at least 2 cells, got {n}")
    return (np.arange(n) + 0.5) * (length / n)


def wavenumbers(n: int, length: float = 1.0) -> np.ndarray:
    """Angular wave numbers 2 pi j / L of ``numpy.fft.rfft`` on n points (j = 0..n//2)."""
    return 2.0 * np.pi * np.fft.rfftfreq(n, d=length / n)


# ----------------------------------------------------------------------------- initial data


def sine_initial_conditions(
    n_samples: int, x: np.ndarray, rng: np.random.Generator, length: float = 1.0,
    k_tot: int = K_TOT, n_draws: int = N_DRAWS,
) -> np.ndarray:
    """PDEBench-style random initial conditions (``init_multi``), evaluated at ``x``.

    Args:
        n_samples: How many functions to draw.
        x: (L,) points in [0, length).
        rng: Source of randomness (the result is a function of its state only).
        length: Period of the domain.
        k_tot: Wave numbers 1..k_tot take part.
        n_draws: How many wave numbers are drawn (with replacement) per sample.

    Returns:
        (n_samples, L) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    drawn = rng.integers(0, k_tot, size=(n_samples, n_draws))  # (n, draws) indices of k - 1
    counts = np.zeros((n_samples, k_tot))  # (n, k_tot): m_k, how often k was drawn
    np.add.at(counts, (np.arange(n_samples)[:, None], drawn), 1.0)
    k = 2.0 * np.pi * np.arange(1, k_tot + 1) * counts / length  # (n, k_tot)
    amp = rng.uniform(0.0, 1.0, size=(n_samples, k_tot, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_samples, k_tot, 1))
    u = (amp * np.sin(k[:, :, None] * x[None, None, :] + phase)).sum(axis=1)  # (n, L)
    u = np.where(rng.random((n_samples, 1)) < P_ABS, np.abs(u), u)
    u = u * rng.choice([-1.0, 1.0], size=(n_samples, 1))
    window = rng.random(n_samples) < P_WINDOW
    left = rng.uniform(*WINDOW_LEFT, size=(n_samples, 1)) * length
    right = rng.uniform(*WINDOW_RIGHT, size=(n_samples, 1)) * length
    mask = 0.5 * (np.tanh((x - left) / (WINDOW_WIDTH * length))
                  - np.tanh((x - right) / (WINDOW_WIDTH * length)))  # (n, L)
    return np.where(window[:, None], u * mask, u)


def random_darcy_coefficients(
    n_samples: int, side: int, rng: np.random.Generator, alpha: float = DARCY_ALPHA,
    tau: float = DARCY_TAU, high: float = DARCY_HIGH, low: float = DARCY_LOW,
) -> np.ndarray:
    """FNO's piecewise-constant Darcy coefficients on a ``side`` x ``side`` vertex grid.

    A Gaussian random field psi = sum_{k1, k2} xi_k (pi^2 |k|^2 + tau^2)^(-alpha/2)
    cos(pi k1 x) cos(pi k2 y), xi_k ~ N(0, 1), without the constant mode (an inverse DCT,
    as FNO's ``GRF.m``), then a = ``high`` where psi >= 0 and ``low`` where psi < 0.

    Returns:
        (n_samples, side, side) float64 with values in {low, high}.
    """
    if side < 3:
        raise ValueError(f"a Darcy grid needs side >= 3 (one interior node), got {side}")
    k1, k2 = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    coef = (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2.0)  # (side, side)
    coef[0, 0] = 0.0  # zero mean, as GRF.m
    xi = rng.standard_normal((n_samples, side, side))
    psi = scipy.fft.idctn(xi * coef, type=2, axes=(1, 2), norm="ortho")  # (n, side, side)
    return np.where(psi >= 0.0, high, low)


# ------------------------------------------------------------------------------- advection


def advect(u0: np.ndarray, beta: float, t: float, length: float = 1.0) -> np.ndarray:
    """Solve u_t + beta u_x = 0 (periodic) exactly in Fourier space: u(x, t) = u0(x - beta t).

    Args:
        u0: (..., L) values on a uniform periodic grid of period ``length``.
        beta: Advection speed.
        t: Time.
        length: Period.

    Returns:
        (..., L) float64, the trigonometric interpolant of u0 shifted by beta t.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    n = u0.shape[-1]
    u_hat = np.fft.rfft(u0, axis=-1)  # (..., L//2 + 1)
    shift = np.exp(-1j * wavenumbers(n, length) * beta * t)
    if n % 2 == 0:
        # The Nyquist mode of a real signal is a cosine; shifting it needs its sine partner,
        # which the grid cannot hold: keep its real part (the interpolant's convention).
        shift[-1] = shift[-1].real
    return np.fft.irfft(u_hat * shift, n=n, axis=-1)


# --------------------------------------------------------------------------------- Burgers


def burgers(
    u0: np.ndarray, nu: float, t: float, length: float = 1.0, steps: int | None = None,
) -> np.ndarray:
    """Solve PDEBench's Burgers equation u_t + (u^2/2)_x = (nu/pi) u_xx on a periodic interval.

    Pseudo-spectral in space (2/3 de-aliasing of the flux), integrating-factor RK4 in time:
    with E = exp(-eps k^2 h / 2), eps = nu / pi and N(v) = -i k FFT(IFFT(v)^2) / 2,

        a = h N(v),  b = h N(E (v + a/2)),  c = h N(E v + b/2),  d = h N(E^2 v + E c),
        v <- E^2 v + (E^2 a + 2 E (b + c) + d) / 6.

    Args:
        u0: (..., L) values on a uniform periodic grid of period ``length``.
        nu: PDEBench's viscosity parameter (the diffusion coefficient is nu / pi).
        t: Final time.
        length: Period.
        steps: Time steps; None picks the fewest with h max|u0| <= CFL dx (max|u| does not
            grow for Burgers, so the bound holds throughout).

    Returns:
        (..., L) float64, u at time t.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    n = u0.shape[-1]
    if t <= 0:
        return u0.copy()
    if steps is None:
        speed = max(float(np.abs(u0).max()), 1e-12)
        steps = max(1, math.ceil(t * speed / (BURGERS_CFL * length / n)))
    h = t / steps
    k = wavenumbers(n, length)  # (L//2 + 1,)
    keep = np.abs(np.fft.rfftfreq(n, d=1.0 / n)) < n / 3.0  # 2/3 rule: drop the top third
    e_half = np.exp(-(nu / np.pi) * k**2 * h / 2.0)
    e_full = e_half**2

    def flux(v: np.ndarray) -> np.ndarray:  # (..., L//2+1) -> (..., L//2+1)
        u = np.fft.irfft(v, n=n, axis=-1)
        return -0.5j * k * keep * np.fft.rfft(u * u, axis=-1)

    v = np.fft.rfft(u0, axis=-1)
    for _ in range(steps):
        a = h * flux(v)
        b = h * flux(e_half * (v + a / 2.0))
        c = h * flux(e_half * v + b / 2.0)
        d = h * flux(e_full * v + e_half * c)
        v = e_full * v + (e_full * a + 2.0 * e_half * (b + c) + d) / 6.0
    return np.fft.irfft(v, n=n, axis=-1)


# ----------------------------------------------------------------------------------- Darcy


def darcy_matrix(a: np.ndarray) -> scipy.sparse.csr_matrix:
    """The 5-point operator -div(a grad .) on the interior nodes of a vertex grid on [0, 1]^2.

    Node (i, j) sits at (i h, j h), h = 1 / (side - 1); boundary nodes hold u = 0. The
    coefficient on the face between two neighbours is the harmonic mean 2 a_P a_Q / (a_P + a_Q).
    Row P: sum_Q c_PQ (u_P - u_Q) / h^2, the terms with a boundary Q keeping only c_PQ u_P.

    Args:
        a: (side, side) positive nodal coefficients, side >= 3.

    Returns:
        ((side-2)^2, (side-2)^2) CSR matrix, interior nodes in row-major (C) order.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(f"a must be a square (side, side) array with side >= 3, got {a.shape}")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("Darcy coefficients must be finite and positive")
    side = a.shape[0]
    m = side - 2
    h2 = (1.0 / (side - 1)) ** 2
    c_x = 2.0 * a[1:, :] * a[:-1, :] / (a[1:, :] + a[:-1, :])  # (side-1, side): faces (i+1/2, j)
    c_y = 2.0 * a[:, 1:] * a[:, :-1] / (a[:, 1:] + a[:, :-1])  # (side, side-1): faces (i, j+1/2)
    north, south = c_x[1:, 1:-1], c_x[:-1, 1:-1]  # (m, m): faces (i+1/2, j), (i-1/2, j)
    east, west = c_y[1:-1, 1:], c_y[1:-1, :-1]  # (m, m): faces (i, j+1/2), (i, j-1/2)
    index = np.arange(m * m).reshape(m, m)
    rows = [index.ravel()]
    cols = [index.ravel()]
    vals = [(north + south + east + west).ravel() / h2]
    for coeff, src, dst in (
        (north[:-1, :], index[:-1, :], index[1:, :]),  # (i, j) -> (i+1, j)
        (south[1:, :], index[1:, :], index[:-1, :]),  # (i, j) -> (i-1, j)
        (east[:, :-1], index[:, :-1], index[:, 1:]),  # (i, j) -> (i, j+1)
        (west[:, 1:], index[:, 1:], index[:, :-1]),  # (i, j) -> (i, j-1)
    ):
        rows.append(src.ravel())
        cols.append(dst.ravel())
        vals.append(-coeff.ravel() / h2)
    return scipy.sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m)
    )


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve -div(a grad u) = f on [0, 1]^2, u = 0 on the boundary (5-point, harmonic means).

    Args:
        a: (side, side) positive coefficients at the nodes of a vertex grid (boundary included).
        f: The source, a constant or (side, side) nodal values (boundary values unused).

    Returns:
        (side, side) float64 solution, zero on the boundary rows and columns.
    """
    a = np.asarray(a, dtype=np.float64)
    matrix = darcy_matrix(a)
    side = a.shape[0]
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (side, side))[1:-1, 1:-1]
    u = np.zeros((side, side))
    u[1:-1, 1:-1] = scipy.sparse.linalg.splu(matrix.tocsc()).solve(rhs.ravel()).reshape(
        side - 2, side - 2)
    return u
