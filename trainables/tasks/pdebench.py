"""PDEBench tasks (Takamoto et al., NeurIPS 2022): HDF5 files, single step u(t0) -> u(T).

Paper scale reads the published PDEBench files (DaRUS, doi:10.18419/darus-2986) the way
ORCA's ``load_pde`` does (sjunhongshen/ORCA, ``src/data_loaders.py``: ``UNetDatasetSingle``
and ``UNetDatasetMult``), which MoNA (arXiv 2024, Appendix A.1, Tables 10-11) follows:
the input is the solution at the first stored time, the target the solution at time index
``min(t_train, n_t') - 1`` of the series subsampled every ``reduced_resolution_t`` steps
(n_t' = ceil(n_t / reduced_resolution_t)), and space is subsampled every
``reduced_resolution`` points. ORCA's constants per file:

======================  ========================================  ====  ====  =======  ============
task                    file                                      r_x   r_t   t_train  (C, *space)
======================  ========================================  ====  ====  =======  ============
advection               1D_Advection_Sols_beta0.4.hdf5            4     5     200      (1, 256)
burgers                 1D_Burgers_Sols_Nu1.0.hdf5                1     5     200      (1, 1024)
diffusion-reaction-1d   ReacDiff_Nu0.5_Rho1.0.hdf5                1     1     30       (1, 1024)
diffusion-sorption      1D_diff-sorp_NA_NA.h5                     1     1     101      (1, 1024)
navier-stokes-1d        1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_...   1     5     100      (3, 1024)
darcy                   2D_DarcyFlow_beta0.1_Train.hdf5           2     -     -        (1, 64, 64)
shallow-water           2D_rdb_NA_NA.h5                           1     1     101      (1, 128, 128)
diffusion-reaction-2d   2D_diff-react_NA_NA.h5                    1     1     101      (1, 128, 128)
======================  ========================================  ====  ====  =======  ============

MoNA's Table 10 lists the files' native resolutions (1024; 128 x 128); ORCA's r_x = 4 for
advection and 2 for Darcy give 256 and 64 x 64, as here and in ORCA's ``task_configs``.

File layouts (PDEBench's ``FNODatasetSingle`` / ``FNODatasetMult``):
    - scalar 1D files: ``tensor`` (N, T, X), with ``x-coordinate`` and ``t-coordinate``;
    - 1D CFD: ``density``, ``pressure``, ``Vx``, each (N, T, X); stacked as 3 channels in
      ORCA's order (density, pressure, Vx) and standardised point-wise with the training
      inputs' mean and std + 1e-5 (ORCA's ``UnitGaussianNormalizer``), targets with the same
      statistics; ``RawTask.y_mean``/``y_std`` undo it, so the metric sees physical values;
    - Darcy: ``nu`` (N, X, Y) the coefficient (input), ``tensor`` (N, 1, X, Y) the steady
      solution (target);
    - ``.h5`` files: one group per sample (``"0000"``, ``"0001"``, ...) holding ``data``
      (T, X, [Y,] V) and a ``grid`` group; 2D diffusion-reaction has V = 2 (u, v), and ORCA
      maps u(t0) to v(T) (``UNetDatasetMult``: ``[:1]`` of the input, ``[1:2]`` of the
      target), kept here.

Train/test split (PDEBench's and ORCA's, test_ratio 0.1): single-file layouts (``tensor``,
CFD, Darcy) put the *first* int(0.1 N) samples in the test set; per-sample group files sort
the group names and put the *last* N - int(0.9 N) in the test set. The validation split is
carved from the training samples later (``trainables.tasks.data.carve_validation``).

Mini scale (``advection``, ``burgers``, ``darcy``) generates the data offline with
``pde_solvers`` and caches it under ``<data_root>/generated/``: 1,000 samples split by the
single-file rule (900 train, 100 test); advection (beta 0.4, t = 2) and Burgers (nu 1.0,
t = 0.05) at 256 points from PDEBench-style sine initial conditions, Darcy flow (f = beta =
0.1) on a 33 x 33 vertex grid with FNO-style piecewise-constant coefficients.

Deviations:
    - 1D CFD: MoNA's Table 10 lists eta = zeta = 1.0, a file PDEBench never published; we read
      ORCA's file, ``1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5``.
    - 1D CFD: ORCA flattens the three variables into one channel of length 3072; we keep
      them as 3 channels of length 1024, so nRMSE averages the per-variable errors as
      PDEBench's metric does.
    - Losses: ORCA trains Burgers and 1D CFD with RMSE; we use MSE (the same minimiser).
      The other six use nRMSE, as ORCA does.
    - Only the two time steps used are read (ORCA loads whole files, up to ~8 GB), and
      ``t_train`` is clipped against the subsampled series for every layout (ORCA's
      ``UNetDatasetMult`` clips against the full one; equal here since its r_t is 1).
    - Mini scale: Burgers stops at t = 0.05 instead of 2: at nu = 1 (diffusion nu / pi) every
      non-constant mode has decayed by at least exp(-8 pi) ~ 1e-11 at t = 2, leaving only the
      mean, while at t = 0.05 the first mode keeps exp(-0.2 pi) ~ 53 %. Resolutions are 256
      (1D; ORCA uses 256 for advection, 1024 for Burgers) and 33 x 33 (Darcy; ORCA 64 x 64);
      Darcy's coefficients follow FNO's construction (12 / 3), not PDEBench's generator.
    - Mini Darcy divides its targets by their training RMS (one number, undone before the
      metric; nRMSE does not change under it), so the head need not learn a 1e-3 output scale.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trainables.errors import DataError
from trainables.registry import TaskDefaults, register_task
from trainables.tasks import files, pde_solvers
from trainables.tasks.data import RawTask, require_scale

logger = logging.getLogger(__name__)

PAPER = (
    "PDEBench (Takamoto et al., NeurIPS 2022); single-step tasks as ORCA (Shen et al., ICML 2023) "
    "and MoNA (arXiv 2024, Tables 10-11)"
)
DARUS = "https://darus.uni-stuttgart.de/api/access/datafile/"
TEST_RATIO = 0.1  # PDEBench's and ORCA's test_ratio
CFD_KEYS = ("density", "pressure", "Vx")  # ORCA's channel order
NORMALIZER_EPS = 1e-5  # ORCA's UnitGaussianNormalizer


@dataclass(frozen=True)
class PdeFile:
    """One published PDEBench file and ORCA's constants for reading it (``load_pde``).

    ``layout``: "tensor" (``tensor`` (N, T, X)), "cfd" (``density``/``pressure``/``Vx``),
    "darcy" (``nu`` and ``tensor``) or "groups" (one group per sample with ``data``).
    ``in_channels``/``out_channels``: the channels of a group file's ``data`` used as input
    and target (None: all).
    """

    name: str
    url: str
    layout: str
    spatial_dims: int
    reduced_resolution: int
    reduced_resolution_t: int = 1
    t_train: int = 0  # unused by "darcy"
    in_channels: tuple[int, ...] | None = None
    out_channels: tuple[int, ...] | None = None
    normalize: bool = False  # ORCA's UnitGaussianNormalizer (1D CFD)

    @property
    def test_first(self) -> bool:
        """Single-file layouts put the first 10 % in the test set, group files the last."""
        return self.layout != "groups"


FILES = {
    "advection": PdeFile("1D_Advection_Sols_beta0.4.hdf5", DARUS + "255674", "tensor", 1, 4, 5, 200),
    "burgers": PdeFile("1D_Burgers_Sols_Nu1.0.hdf5", DARUS + "281365", "tensor", 1, 1, 5, 200),
    "diffusion-reaction-1d": PdeFile("ReacDiff_Nu0.5_Rho1.0.hdf5", DARUS + "133177", "tensor", 1, 1, 1, 30),
    "diffusion-sorption": PdeFile("1D_diff-sorp_NA_NA.h5", DARUS + "133020", "groups", 1, 1, 1, 101),
    "navier-stokes-1d": PdeFile("1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5", DARUS + "164668",
                                "cfd", 1, 1, 5, 100, normalize=True),
    "darcy": PdeFile("2D_DarcyFlow_beta0.1_Train.hdf5", DARUS + "133218", "darcy", 2, 2),
    "shallow-water": PdeFile("2D_rdb_NA_NA.h5", DARUS + "133021", "groups", 2, 1, 1, 101),
    "diffusion-reaction-2d": PdeFile("2D_diff-react_NA_NA.h5", DARUS + "133017", "groups", 2, 1, 1, 101,
                                     in_channels=(0,), out_channels=(1,)),
}


# ----------------------------------------------------------------------------- paper scale


def final_time_index(n_t: int, spec: PdeFile) -> int:
    """Index into the stored series of ORCA's target time: (min(t_train, n_t') - 1) * r_t.

    n_t' = ceil(n_t / r_t) is the length of the series subsampled every r_t steps.

    >>> final_time_index(201, FILES["advection"]), final_time_index(101, FILES["diffusion-reaction-1d"])
    (200, 29)
    """
    subsampled = math.ceil(n_t / spec.reduced_resolution_t)
    return (min(spec.t_train, subsampled) - 1) * spec.reduced_resolution_t


def _describe_keys(group: h5py.Group) -> str:
    keys = sorted(group.keys())
    shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
    return f"[{shown}]" if keys else "nothing"


def _dataset(group: h5py.Group, key: str, path: Path, rank: int, expected: str) -> h5py.Dataset:
    """``group[key]`` after checking it is a numeric dataset of the expected rank.

    Raises:
        DataError: naming the file, the key, what was expected and what was found.
    """
    where = f"{path} ({group.name.rstrip('/')}/{key})" if group.name != "/" else f"{path} ({key})"
    if key not in group:
        raise DataError(
            f"Malformed {path}: expected key {key!r} holding {expected}; "
            f"{group.name!r} has {_describe_keys(group)}. Fix: download the file again."
        )
    dset = group[key]
    if not isinstance(dset, h5py.Dataset):
        raise DataError(f"Malformed {where}: expected a dataset holding {expected}, found a group")
    if dset.dtype.kind not in "fiu":
        raise DataError(f"Malformed {where}: expected numbers, found dtype {dset.dtype}")
    if dset.ndim != rank:
        raise DataError(f"Malformed {where}: expected {expected}, found shape {dset.shape}")
    return dset


def _time_steps(n_t: int, where: str) -> None:
    if n_t < 2:
        raise DataError(
            f"Malformed {where}: expected at least 2 time steps (input and target), found {n_t}"
        )


def _space(spec: PdeFile) -> tuple[slice, ...]:
    return (slice(None, None, spec.reduced_resolution),) * spec.spatial_dims


def _read_tensor(f: h5py.File, path: Path, spec: PdeFile) -> dict[str, np.ndarray]:
    """Scalar 1D files: ``tensor`` (N, T, X) -> x = u(t0), y = u(T), each (N, 1, X')."""
    dset = _dataset(f, "tensor", path, 3, "(samples, time, x) solutions")
    _time_steps(dset.shape[1], f"{path} (tensor)")
    t_end = final_time_index(dset.shape[1], spec)
    step = spec.reduced_resolution
    return {"x": dset[:, 0, ::step][:, None], "y": dset[:, t_end, ::step][:, None]}


def _read_cfd(f: h5py.File, path: Path, spec: PdeFile) -> dict[str, np.ndarray]:
    """1D CFD: ``density``, ``pressure``, ``Vx`` (N, T, X) -> 3 channels (N, 3, X')."""
    dsets = [_dataset(f, key, path, 3, "(samples, time, x) values") for key in CFD_KEYS]
    shapes = {key: d.shape for key, d in zip(CFD_KEYS, dsets)}
    if len(set(shapes.values())) != 1:
        raise DataError(f"Malformed {path}: expected {', '.join(CFD_KEYS)} of one shape, found {shapes}")
    _time_steps(dsets[0].shape[1], f"{path} (density)")
    t_end = final_time_index(dsets[0].shape[1], spec)
    step = spec.reduced_resolution
    return {
        "x": np.stack([d[:, 0, ::step] for d in dsets], axis=1),  # (N, 3, X')
        "y": np.stack([d[:, t_end, ::step] for d in dsets], axis=1),
    }


def _read_darcy(f: h5py.File, path: Path, spec: PdeFile) -> dict[str, np.ndarray]:
    """Darcy: ``nu`` (N, X, Y) -> input, ``tensor`` (N, T, X, Y) at its last T -> target."""
    nu = _dataset(f, "nu", path, 3, "(samples, x, y) coefficients")
    sol = _dataset(f, "tensor", path, 4, "(samples, 1, x, y) solutions")
    if sol.shape[0] != nu.shape[0] or sol.shape[2:] != nu.shape[1:] or sol.shape[1] < 1:
        raise DataError(
            f"Malformed {path}: expected tensor (N, 1, X, Y) matching nu (N, X, Y), found "
            f"tensor {sol.shape} and nu {nu.shape}"
        )
    space = _space(spec)
    return {"x": nu[(slice(None), *space)][:, None],  # (N, 1, X', Y')
            "y": sol[(slice(None), sol.shape[1] - 1, *space)][:, None]}


def _read_groups(f: h5py.File, path: Path, spec: PdeFile) -> dict[str, np.ndarray]:
    """One group per sample, ``data`` (T, X, [Y,] V) -> channels-first (N, V, X'[, Y'])."""
    names = sorted(f.keys())
    if not names:
        raise DataError(f"Malformed {path}: expected one group per sample (\"0000\", ...), found none")
    rank = spec.spatial_dims + 2
    axes = "(time, x, y, channels)" if spec.spatial_dims == 2 else "(time, x, channels)"
    first = f[names[0]]
    if not isinstance(first, h5py.Group):
        raise DataError(f"Malformed {path}: expected a group per sample, {names[0]!r} is a dataset")
    shape = _dataset(first, "data", path, rank, f"{axes} values").shape
    _time_steps(shape[0], f"{path} ({names[0]}/data)")
    t_end = final_time_index(shape[0], spec)
    index = (*_space(spec), slice(None))
    xs, ys = [], []
    for name in names:
        group = f[name]
        if not isinstance(group, h5py.Group):
            raise DataError(f"Malformed {path}: expected a group per sample, {name!r} is a dataset")
        dset = _dataset(group, "data", path, rank, f"{axes} values")
        if dset.shape != shape:
            raise DataError(
                f"Malformed {path}: every sample's data should have one shape; {names[0]}/data is "
                f"{shape}, {name}/data is {dset.shape}"
            )
        xs.append(dset[0][index])  # (*space', V)
        ys.append(dset[t_end][index])
    channels_first = (0, rank - 1, *range(1, rank - 1))  # (N, *space, V) -> (N, V, *space)
    x = np.stack(xs).transpose(channels_first)
    y = np.stack(ys).transpose(channels_first)
    n_channels = shape[-1]
    for role, chosen in (("input", spec.in_channels), ("target", spec.out_channels)):
        if chosen is not None and max(chosen) >= n_channels:
            raise DataError(
                f"Malformed {path}: expected data with channels {list(chosen)} for the {role}, "
                f"found {n_channels} channel(s) (shape {shape})"
            )
    if spec.in_channels is not None:
        x = x[:, list(spec.in_channels)]
    if spec.out_channels is not None:
        y = y[:, list(spec.out_channels)]
    return {"x": x, "y": y}


READERS: dict[str, Callable[[h5py.File, Path, PdeFile], dict[str, np.ndarray]]] = {
    "tensor": _read_tensor, "cfd": _read_cfd, "darcy": _read_darcy, "groups": _read_groups,
}


def split_sizes(n: int, test_first: bool) -> tuple[int, int]:
    """(n_train, n_test) under PDEBench's rule: test = first int(0.1 n) or last n - int(0.9 n).

    >>> split_sizes(10000, True), split_sizes(1000, False), split_sizes(25, True), split_sizes(25, False)
    ((9000, 1000), (900, 100), (23, 2), (22, 3))
    """
    n_test = int(n * TEST_RATIO) if test_first else n - int(n * (1.0 - TEST_RATIO))
    return n - n_test, n_test


def split(x: np.ndarray, y: np.ndarray, test_first: bool, where: str) -> dict[str, np.ndarray]:
    """Split samples into train and test by PDEBench's rule (see ``split_sizes``).

    Raises:
        DataError: if a split would be empty or the training split has fewer than 2 samples.
    """
    n = len(x)
    n_train, n_test = split_sizes(n, test_first)
    if n_test < 1 or n_train < 2:
        rule = "first int(0.1 N)" if test_first else "last N - int(0.9 N)"
        raise DataError(
            f"{where}: {n} samples are too few for PDEBench's split (the {rule} samples are the "
            f"test set): {n_train} train / {n_test} test; expected >= 2 train and >= 1 test"
        )
    test = slice(0, n_test) if test_first else slice(n_train, n)
    train = slice(n_test, n) if test_first else slice(0, n_train)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def unit_gaussian(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORCA's ``UnitGaussianNormalizer``: point-wise mean and std (ddof 1) + eps over samples.

    Returns:
        (mean, scale), each train.shape[1:], so that encode(v) = (v - mean) / scale.
    """
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, ddof=1, dtype=np.float64)
    return mean.astype(np.float32), (std + NORMALIZER_EPS).astype(np.float32)


# What each layout's inputs and targets are read from, and their names, for error messages.
LAYOUT_KEYS = {"tensor": "tensor", "cfd": "/".join(CFD_KEYS), "darcy": "nu / tensor",
               "groups": "*/data"}
ROLES = {"x": "inputs (t0)", "y": "targets (T)"}


def load_paper(task: str, data_root: Path) -> RawTask:
    """Read task ``task``'s PDEBench file from ``data_root`` as ORCA's single-step task.

    Raises:
        DataError: missing or unreadable file, missing key, wrong rank or shape, too few
            samples, non-finite values.
    """
    spec = FILES[task]
    path = files.require_file(Path(data_root), spec.name, task,
                              f"PDEBench's DaRUS repository, {spec.url}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataError(
            f"Cannot read {path} as HDF5 (PDEBench's {spec.name}): {err}. Fix: download the file again."
        ) from err
    with f:
        arrays = READERS[spec.layout](f, path, spec)
    for role, values in arrays.items():
        files.check_finite(values, path, f"the {ROLES[role]} read from {LAYOUT_KEYS[spec.layout]}")
    x, y = (arrays[k].astype(np.float32) for k in ("x", "y"))
    parts = split(x, y, spec.test_first, str(path))
    y_mean = y_std = None
    if spec.normalize:
        mean, scale = unit_gaussian(parts["x_train"])
        parts = {k: ((v - mean) / scale).astype(np.float32) for k, v in parts.items()}
        y_mean, y_std = mean, scale
    return RawTask(**parts, num_outputs=y.shape[1], source=f"file:{spec.name}",
                   y_mean=y_mean, y_std=y_std)


# ----------------------------------------------------------------------------- mini scale


@dataclass(frozen=True)
class MiniTask:
    """An embedded, solver-generated variant: ``generate(seed) -> (x, y)`` float arrays."""

    params: str  # recorded in the source string and the cache, e.g. "beta=0.4,t=2.0,..."
    generate: Callable[[int], tuple[np.ndarray, np.ndarray]]
    shape: tuple[int, ...]  # (C, *space) of x and y
    rescale_targets: bool = False  # divide targets by their training RMS (see target_scale)


MINI_SAMPLES = 1000  # 900 train / 100 test by the single-file rule
MINI_LENGTH = 256  # 1D grid points
MINI_DARCY_SIDE = 33  # vertex grid with boundary, h = 1/32
ADVECTION_BETA, ADVECTION_T = 0.4, 2.0  # Table 10's beta; PDEBench's final time
BURGERS_NU, BURGERS_T = 1.0, 0.05  # Table 10's nu; t = 0.05 (see Deviations)
DARCY_BETA = 0.1  # Table 10's beta: the constant source f


def _generate_advection(seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = pde_solvers.cell_centres(MINI_LENGTH)
    u0 = pde_solvers.sine_initial_conditions(MINI_SAMPLES, x, np.random.default_rng(seed))
    return u0[:, None], pde_solvers.advect(u0, ADVECTION_BETA, ADVECTION_T)[:, None]  # (n, 1, L)


def _generate_burgers(seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = pde_solvers.cell_centres(MINI_LENGTH)
    u0 = pde_solvers.sine_initial_conditions(MINI_SAMPLES, x, np.random.default_rng(seed))
    return u0[:, None], pde_solvers.burgers(u0, BURGERS_NU, BURGERS_T)[:, None]  # (n, 1, L)


def _generate_darcy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = pde_solvers.random_darcy_coefficients(MINI_SAMPLES, MINI_DARCY_SIDE, rng)  # (n, S, S)
    u = np.stack([pde_solvers.solve_darcy(coeff, DARCY_BETA) for coeff in a])  # (n, S, S)
    return a[:, None], u[:, None]  # (n, 1, S, S)


MINI = {
    "advection": MiniTask(f"beta={ADVECTION_BETA},t={ADVECTION_T},n={MINI_LENGTH},samples={MINI_SAMPLES}",
                          _generate_advection, (1, MINI_LENGTH)),
    "burgers": MiniTask(f"nu={BURGERS_NU},t={BURGERS_T},n={MINI_LENGTH},samples={MINI_SAMPLES}",
                        _generate_burgers, (1, MINI_LENGTH)),
    "darcy": MiniTask(f"beta={DARCY_BETA},side={MINI_DARCY_SIDE},samples={MINI_SAMPLES}",
                      _generate_darcy, (1, MINI_DARCY_SIDE, MINI_DARCY_SIDE), rescale_targets=True),
}


def cache_path(data_root: Path, task: str, seed: int) -> Path:
    """``<data_root>/generated/pde_<task>_seed<seed>.npz``."""
    return files.cache_path(data_root, f"pde_{task}_seed{seed}")


def _build_mini(task: str, seed: int) -> dict[str, np.ndarray]:
    """Generate task ``task``'s samples and split them by the single-file rule (test first)."""
    x, y = MINI[task].generate(seed)
    return split(x.astype(np.float32), y.astype(np.float32), True, f"generated {task}")


def load_mini(task: str, data_root: Path, seed: int) -> RawTask:
    """Task ``task``'s embedded variant from the cache, generating (and caching) it if needed."""
    mini = MINI[task]
    arrays = files.cached_arrays(
        cache_path(data_root, task, seed), _expected_shapes(mini), {"params": mini.params, "seed": seed},
        lambda: _build_mini(task, seed), f"{task}({mini.params}, seed={seed})", logger,
    )
    arrays = {key: value.astype(np.float32, copy=False) for key, value in arrays.items()}
    y_mean = y_std = None
    if mini.rescale_targets:
        y_mean, y_std = target_scale(arrays["y_train"])
        arrays = {k: (v / y_std if k.startswith("y_") else v) for k, v in arrays.items()}
    return RawTask(**arrays, num_outputs=mini.shape[0],
                   source=f"generated:{task}({mini.params},seed={seed})", y_mean=y_mean, y_std=y_std)


def target_scale(y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(0, RMS of the training targets), shaped to broadcast over one target (C, *space).

    Dividing targets by one positive number leaves nRMSE (loss and metric) unchanged; it only
    brings Darcy's ~1e-3 solutions (f = 0.1) to the O(1) scale a freshly built head outputs.
    ``RawTask.y_mean``/``y_std`` undo it before the metric.
    """
    rms = np.sqrt(np.mean(np.square(y_train, dtype=np.float64)))
    shape = (1,) * (y_train.ndim - 1)
    return np.zeros(shape, np.float32), np.full(shape, rms, np.float32)


def _expected_shapes(mini: MiniTask) -> dict[str, tuple[int, ...]]:
    n_train, n_test = split_sizes(MINI_SAMPLES, True)
    return {"x_train": (n_train, *mini.shape), "y_train": (n_train, *mini.shape),
            "x_test": (n_test, *mini.shape), "y_test": (n_test, *mini.shape)}


# ---------------------------------------------------------------------------- registration


def _loader(task: str) -> Callable[..., RawTask]:
    """The registered loader of ``task``: paper scale reads its file, mini scale generates."""

    def load(data_root: Path, scale: str, seed: int = 0) -> RawTask:
        require_scale(task, scale)
        if scale == "mini":
            return load_mini(task, Path(data_root), seed)
        return load_paper(task, Path(data_root))

    load.__name__ = f"load_{task.replace('-', '_')}"
    load.__doc__ = f"Load PDEBench's {FILES[task].name} (paper) or its generated variant (mini)."
    return load


def _defaults(batch: int, epochs: int, optimizer: str, lr: float, wd: float) -> TaskDefaults:
    """MoNA's Table 11 (stage-2 fine-tuning): every PDEBench task uses grad. accum. 1."""
    return TaskDefaults(lr=lr, weight_decay=wd, batch_size=batch, grad_accum=1, epochs=epochs,
                        optimizer=optimizer)


# Embedded variants, sized for 2 CPUs: 900 training samples (810 after validation); the 1D ones
# train on 400 of them (all-MiniLM-L6-v2 on 64 tokens: ~20-30 s per epoch per trial).
MINI_1D_DEFAULTS = TaskDefaults(lr=3e-4, weight_decay=1e-5, batch_size=32, epochs=6, optimizer="adamw",
                                max_train_samples=400)
MINI_2D_DEFAULTS = TaskDefaults(lr=1e-3, weight_decay=1e-5, batch_size=32, epochs=10, optimizer="adamw")

# name: (modality, input shape, loss, Table 11 column: batch, epochs, optimizer, lr, wd)
TASKS: dict[str, tuple[str, tuple[int, ...], str, TaskDefaults]] = {
    "advection": ("1d", (1, 256), "nrmse", _defaults(4, 200, "adam", 1e-4, 1e-5)),
    "burgers": ("1d", (1, 1024), "mse", _defaults(4, 200, "adam", 1e-5, 1e-5)),
    "diffusion-reaction-1d": ("1d", (1, 1024), "nrmse", _defaults(4, 200, "sgd", 1e-3, 1e-5)),
    "diffusion-sorption": ("1d", (1, 1024), "nrmse", _defaults(4, 200, "adamw", 1e-4, 0.0)),
    "navier-stokes-1d": ("1d", (3, 1024), "mse", _defaults(4, 200, "adamw", 1e-4, 1e-3)),
    "darcy": ("2d", (1, 64, 64), "nrmse", _defaults(4, 100, "adamw", 1e-4, 1e-5)),
    "shallow-water": ("2d", (1, 128, 128), "nrmse", _defaults(4, 200, "adamw", 1e-4, 0.0)),
    "diffusion-reaction-2d": ("2d", (1, 128, 128), "nrmse", _defaults(4, 200, "adam", 1e-4, 1e-3)),
}



def _register_all() -> None:
    """Register the eight tasks: one loader each, Table 11's defaults, mini where generated."""
    for name, (modality, shape, loss, paper_defaults) in TASKS.items():
        spec = FILES[name]
        mini = MINI_1D_DEFAULTS if modality == "1d" else MINI_2D_DEFAULTS
        register_task(
            name,
            modality=modality,
            output="dense",
            input_shape=shape,
            num_outputs=shape[0] if spec.out_channels is None else len(spec.out_channels),
            loss=loss,
            metric="nrmse",
            data_files=(spec.name,),
            paper=PAPER,
            defaults=paper_defaults,
            mini=mini if name in MINI else None,
        )(_loader(name))


_register_all()
