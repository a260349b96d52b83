"""Tiny PDEBench files in the published layouts, for tests (no tests in this module).

``WRITERS[task](data_dir)`` writes task ``task``'s file, under its published name, with
``N_SAMPLES`` samples, the published number of time steps and a few grid points. Every value
says where it sits: ``encode(sample, time, space, channel)``, so a test can check which time
step, which points and which samples a loader picked. Layouts follow PDEBench's
``FNODatasetSingle`` / ``FNODatasetMult`` and ``data_download/visualize_pdes.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

N_SAMPLES = 20
TIME_STEPS = {  # as published: t = 0..2 every 0.01 (advection, Burgers), else 101 steps
    "advection": 201, "burgers": 201, "diffusion-reaction-1d": 101, "diffusion-sorption": 101,
    "navier-stokes-1d": 101, "shallow-water": 101, "diffusion-reaction-2d": 101,
}
POINTS = {  # grid points per axis (published: 1024 in 1D, 128 in 2D)
    "advection": 16, "burgers": 8, "diffusion-reaction-1d": 8, "diffusion-sorption": 8,
    "navier-stokes-1d": 8, "darcy": 8, "shallow-water": 4, "diffusion-reaction-2d": 4,
}
FILE_NAMES = {
    "advection": "1D_Advection_Sols_beta0.4.hdf5",
    "burgers": "1D_Burgers_Sols_Nu1.0.hdf5",
    "diffusion-reaction-1d": "ReacDiff_Nu0.5_Rho1.0.hdf5",
    "diffusion-sorption": "1D_diff-sorp_NA_NA.h5",
    "navier-stokes-1d": "1D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5",
    "darcy": "2D_DarcyFlow_beta0.1_Train.hdf5",
    "shallow-water": "2D_rdb_NA_NA.h5",
    "diffusion-reaction-2d": "2D_diff-react_NA_NA.h5",
}


def encode(sample, time, space, channel=0) -> np.ndarray:
    """The value stored for (sample, time step, flat spatial index, channel), as float32.

    sample * 1e5 + time * 100 + space + channel / 4 is exact in float32 for sample < 20,
    time < 1000, space < 100 and channel < 4 (all below 2^21, where the spacing is 1/8).
    """
    return (np.asarray(sample) * 100000.0 + np.asarray(time) * 100.0 + np.asarray(space)
            + np.asarray(channel) * 0.25).astype(np.float32)


def _series(n: int, t: int, points: tuple[int, ...], channel: int = 0) -> np.ndarray:
    """(n, t, *points) encoded values (row-major flat spatial index)."""
    grid = np.meshgrid(np.arange(n), np.arange(t), np.arange(int(np.prod(points))), indexing="ij")
    values = encode(grid[0], grid[1], grid[2], channel)  # (n, t, prod(points))
    return values.reshape(n, t, *points)


def _centres(n: int) -> np.ndarray:
    return ((np.arange(n) + 0.5) / n).astype(np.float32)


def _write_tensor_1d(task: str) -> Callable[[Path], None]:
    def write(data_dir: Path) -> None:
        t, x = TIME_STEPS[task], POINTS[task]
        with h5py.File(Path(data_dir) / FILE_NAMES[task], "w") as f:
            f["tensor"] = _series(N_SAMPLES, t, (x,))  # (N, T, X)
            f["x-coordinate"] = _centres(x)
            f["t-coordinate"] = np.linspace(0.0, 2.0, t + 1, dtype=np.float32)  # T + 1, as published
    return write


def write_cfd(data_dir: Path) -> None:
    task = "navier-stokes-1d"
    t, x = TIME_STEPS[task], POINTS[task]
    with h5py.File(Path(data_dir) / FILE_NAMES[task], "w") as f:
        for channel, key in enumerate(("density", "pressure", "Vx")):
            f[key] = _series(N_SAMPLES, t, (x,), channel)  # (N, T, X)
        f["x-coordinate"] = _centres(x)
        f["t-coordinate"] = np.linspace(0.0, 1.0, t + 1, dtype=np.float32)


def write_darcy(data_dir: Path) -> None:
    """``nu`` encodes time 0 and ``tensor`` time 1 (ORCA stacks them as [nu, u] in time)."""
    side = POINTS["darcy"]
    with h5py.File(Path(data_dir) / FILE_NAMES["darcy"], "w") as f:
        f["nu"] = _series(N_SAMPLES, 1, (side, side))[:, 0]  # (N, X, Y)
        f["tensor"] = _series(N_SAMPLES, 2, (side, side))[:, 1:]  # (N, 1, X, Y)
        f["x-coordinate"] = _centres(side)
        f["y-coordinate"] = _centres(side)
        f["t-coordinate"] = np.linspace(0.0, 1.0, 10, dtype=np.float32)


def _write_groups(task: str, spatial_dims: int, channels: int) -> Callable[[Path], None]:
    def write(data_dir: Path) -> None:
        t, side = TIME_STEPS[task], POINTS[task]
        points = (side,) * spatial_dims
        series = np.stack([_series(N_SAMPLES, t, points, c) for c in range(channels)], axis=-1)
        with h5py.File(Path(data_dir) / FILE_NAMES[task], "w") as f:
            for n in range(N_SAMPLES):
                group = f.create_group(f"{n:04d}")
                group["data"] = series[n]  # (T, X, [Y,] V)
                for axis in "xy"[:spatial_dims]:
                    group[f"grid/{axis}"] = _centres(side)
                group["grid/t"] = np.linspace(0.0, 1.0, t, dtype=np.float32)
    return write


WRITERS: dict[str, Callable[[Path], None]] = {
    "advection": _write_tensor_1d("advection"),
    "burgers": _write_tensor_1d("burgers"),
    "diffusion-reaction-1d": _write_tensor_1d("diffusion-reaction-1d"),
    "diffusion-sorption": _write_groups("diffusion-sorption", 1, 1),
    "navier-stokes-1d": write_cfd,
    "darcy": write_darcy,
    "shallow-water": _write_groups("shallow-water", 2, 1),
    "diffusion-reaction-2d": _write_groups("diffusion-reaction-2d", 2, 2),
}
