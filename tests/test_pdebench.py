"""PDEBench loaders (paper scale) on tiny files in the published layouts.

Every value in the tiny files encodes (sample, time step, spatial index, channel)
(``tiny_files_pdebench.encode``), so these tests check which time steps, grid points, channels
and samples each loader picks against ORCA's constants, worked out by hand here.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from tiny_files_pdebench import FILE_NAMES, N_SAMPLES, WRITERS, encode

from trainables.errors import DataError
from trainables.registry import TASKS
from trainables.tasks import pdebench
from trainables.tasks.data import carve_validation, denormalize

ALL = sorted(WRITERS)
TEST_FIRST = list(range(2, N_SAMPLES)), [0, 1]  # single files: int(0.1 * 20) = 2 test samples first
TEST_LAST = list(range(18)), [18, 19]  # group files: int(0.9 * 20) = 18 train, then test

# task: (input time, target time, spatial indices kept, input channels, target channels, split)
# Target times by hand: advection/Burgers 201 steps every 5 -> 41, t_train 200 -> last: 40*5;
# reaction-diffusion 1D t_train 30 -> 29; 1D CFD 101 every 5 -> 21 -> 20*5; groups 101 -> 100.
# Darcy: nu is "time 0", tensor "time 1" in the tiny files; 8x8 every 2 -> rows/cols 0,2,4,6.
DARCY_POINTS = [8 * i + j for i in (0, 2, 4, 6) for j in (0, 2, 4, 6)]
EXPECTED = {
    "advection": (0, 200, [0, 4, 8, 12], [0], [0], TEST_FIRST),
    "burgers": (0, 200, list(range(8)), [0], [0], TEST_FIRST),
    "diffusion-reaction-1d": (0, 29, list(range(8)), [0], [0], TEST_FIRST),
    "diffusion-sorption": (0, 100, list(range(8)), [0], [0], TEST_LAST),
    "navier-stokes-1d": (0, 100, list(range(8)), [0, 1, 2], [0, 1, 2], TEST_FIRST),
    "darcy": (0, 1, DARCY_POINTS, [0], [0], TEST_FIRST),
    "shallow-water": (0, 100, list(range(16)), [0], [0], TEST_LAST),
    "diffusion-reaction-2d": (0, 100, list(range(16)), [0], [1], TEST_LAST),  # ORCA: u(t0) -> v(T)
}
# MoNA Table 11: batch, epochs, grad accum, optimizer, lr, weight decay.
TABLE_11 = {
    "advection": (4, 200, 1, "adam", 1e-4, 1e-5),
    "burgers": (4, 200, 1, "adam", 1e-5, 1e-5),
    "diffusion-reaction-1d": (4, 200, 1, "sgd", 1e-3, 1e-5),
    "diffusion-sorption": (4, 200, 1, "adamw", 1e-4, 0.0),
    "navier-stokes-1d": (4, 200, 1, "adamw", 1e-4, 1e-3),
    "darcy": (4, 100, 1, "adamw", 1e-4, 1e-5),
    "shallow-water": (4, 200, 1, "adamw", 1e-4, 0.0),
    "diffusion-reaction-2d": (4, 200, 1, "adam", 1e-4, 1e-3),
}


def load(task: str, data_dir, scale: str = "paper"):
    return TASKS.get(task).loader(data_dir, scale, 0)


def _expected(samples, time, points, channels) -> np.ndarray:
    """(len(samples), len(channels), len(points)) encoded values."""
    n, c, s = np.meshgrid(samples, channels, points, indexing="ij")
    return encode(n, time, s, c)


@pytest.mark.parametrize("task", ALL)
def test_loader_picks_orca_time_steps_points_and_split(task, tmp_path):
    WRITERS[task](tmp_path)
    raw = load(task, tmp_path)
    t_in, t_out, points, c_in, c_out, (train, test) = EXPECTED[task]
    spatial = (2, 2) if task == "darcy" else (4, 4) if task in ("shallow-water", "diffusion-reaction-2d") else ()
    for name, samples, time, channels, array in (
        ("x_train", train, t_in, c_in, raw.x_train), ("y_train", train, t_out, c_out, raw.y_train),
        ("x_test", test, t_in, c_in, raw.x_test), ("y_test", test, t_out, c_out, raw.y_test),
    ):
        assert array.dtype == np.float32, name
        values = denormalize(array, raw.y_mean, raw.y_std)  # identity except for 1D CFD
        expected = _expected(samples, time, points, channels)
        if spatial:
            side = int(np.sqrt(len(points)))
            expected = expected.reshape(len(samples), len(channels), side, side)
        np.testing.assert_allclose(values, expected, rtol=1e-6, err_msg=name)
    assert raw.num_outputs == len(c_out) == TASKS.get(task).num_outputs
    assert raw.source == f"file:{FILE_NAMES[task]}"


def test_navier_stokes_is_standardised_with_training_input_statistics(tmp_path):
    WRITERS["navier-stokes-1d"](tmp_path)
    raw = load("navier-stokes-1d", tmp_path)
    assert raw.x_train.shape == (18, 3, 8) and raw.y_mean.shape == raw.y_std.shape == (3, 8)
    np.testing.assert_allclose(raw.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(raw.x_train.std(axis=0, ddof=1), 1.0, rtol=1e-5)
    # Training samples 2..19 differ by 1e5 per sample: std (ddof 1) = 1e5 sqrt(18 * 19 / 12).
    np.testing.assert_allclose(raw.y_std, 1e5 * np.sqrt(18 * 19 / 12) + 1e-5, rtol=1e-6)
    c, s = np.meshgrid(np.arange(3), np.arange(8), indexing="ij")
    np.testing.assert_allclose(raw.y_mean, encode(10.5, 0, s, c), rtol=1e-7)  # input (t = 0) stats
    # Targets use the inputs' statistics (ORCA: y_normalizer = x_normalizer), not their own.
    np.testing.assert_allclose(raw.y_train.mean(axis=0), 100 * 100 / raw.y_std, rtol=1e-4)


def test_final_time_index_clips_t_train_to_the_subsampled_series():
    adv, rd = pdebench.FILES["advection"], pdebench.FILES["diffusion-reaction-1d"]
    assert pdebench.final_time_index(201, adv) == 200  # ceil(201/5) = 41 < 200: last, 40 * 5
    assert pdebench.final_time_index(12, adv) == 10  # ceil(12/5) = 3: index 2 * 5
    assert pdebench.final_time_index(101, rd) == 29  # t_train 30
    assert pdebench.final_time_index(20, rd) == 19  # fewer steps than t_train: the last
    assert pdebench.final_time_index(101, pdebench.FILES["navier-stokes-1d"]) == 100


def test_registered_specs_follow_tables_10_and_11():
    shapes = {"advection": (1, 256), "burgers": (1, 1024), "diffusion-reaction-1d": (1, 1024),
              "diffusion-sorption": (1, 1024), "navier-stokes-1d": (3, 1024), "darcy": (1, 64, 64),
              "shallow-water": (1, 128, 128), "diffusion-reaction-2d": (1, 128, 128)}
    for task, (batch, epochs, accum, optimizer, lr, wd) in TABLE_11.items():
        spec = TASKS.get(task)
        assert spec.modality == ("2d" if len(shapes[task]) == 3 else "1d")
        assert spec.output == "dense" and spec.metric == "nrmse" and spec.input_shape == shapes[task]
        assert spec.loss == ("mse" if task in ("burgers", "navier-stokes-1d") else "nrmse")
        assert spec.data_files == (FILE_NAMES[task],)
        d = spec.defaults
        assert (d.batch_size, d.epochs, d.grad_accum, d.optimizer, d.lr,
                d.weight_decay) == (batch, epochs, accum, optimizer, lr, wd)
        assert spec.has_mini == (task in ("advection", "burgers", "darcy"))


def test_tiny_files_are_small(tmp_path):
    for task, write in WRITERS.items():
        write(tmp_path)
        assert (tmp_path / FILE_NAMES[task]).stat().st_size < 1_000_000, task


def test_validation_split_carves_from_training_samples(tmp_path):
    WRITERS["shallow-water"](tmp_path)
    data = carve_validation(load("shallow-water", tmp_path), 0.2, seed=0)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (14, 4, 2)
    seen = np.concatenate([data.x_train, data.x_val])[:, 0, 0, 0] // 100000
    assert sorted(seen.astype(int).tolist()) == list(range(18))  # test samples 18, 19 untouched


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("task", ALL)
def test_missing_file_names_file_url_and_fix(task, tmp_path):
    with pytest.raises(DataError) as err:
        load(task, tmp_path)
    message = str(err.value)
    assert FILE_NAMES[task] in message and str(tmp_path) in message
    assert "darus.uni-stuttgart.de" in message and "--data-dir" in message
    assert ("--scale mini" in message) == (task in ("advection", "burgers", "darcy"))


def _rewrite(path, drop: str | None = None, **datasets) -> None:
    """Copy ``path``'s top-level datasets except ``drop``, replacing/adding ``datasets``."""
    with h5py.File(path, "r") as f:
        kept = {k: f[k][()] for k in f if k != drop and isinstance(f[k], h5py.Dataset)}
    with h5py.File(path, "w") as f:
        for key, value in {**kept, **datasets}.items():
            f[key] = value


def test_missing_key_names_key_and_found_keys(tmp_path):
    WRITERS["advection"](tmp_path)
    path = tmp_path / FILE_NAMES["advection"]
    with h5py.File(path, "r") as f:
        tensor = f["tensor"][()]
    _rewrite(path, drop="tensor", data=tensor)
    with pytest.raises(DataError, match=r"expected key 'tensor'.*has \[data, t-coordinate, x-coordinate\]"):
        load("advection", tmp_path)


def test_wrong_rank_names_expected_and_found_shape(tmp_path):
    WRITERS["burgers"](tmp_path)
    _rewrite(tmp_path / FILE_NAMES["burgers"], tensor=np.zeros((20, 8), np.float32))
    with pytest.raises(DataError, match=r"\(tensor\).*\(samples, time, x\).*found shape \(20, 8\)"):
        load("burgers", tmp_path)


def test_cfd_missing_variable_and_mismatched_shapes(tmp_path):
    WRITERS["navier-stokes-1d"](tmp_path)
    path = tmp_path / FILE_NAMES["navier-stokes-1d"]
    _rewrite(path, Vx=np.zeros((20, 101, 4), np.float32))
    with pytest.raises(DataError, match="density, pressure, Vx of one shape"):
        load("navier-stokes-1d", tmp_path)
    _rewrite(path, drop="Vx")
    with pytest.raises(DataError, match="expected key 'Vx'"):
        load("navier-stokes-1d", tmp_path)


def test_darcy_shape_mismatch(tmp_path):
    WRITERS["darcy"](tmp_path)
    _rewrite(tmp_path / FILE_NAMES["darcy"], nu=np.ones((20, 6, 6), np.float32))
    with pytest.raises(DataError, match=r"tensor \(20, 1, 8, 8\) and nu \(20, 6, 6\)"):
        load("darcy", tmp_path)


def test_group_file_errors(tmp_path):
    WRITERS["diffusion-reaction-2d"](tmp_path)
    path = tmp_path / FILE_NAMES["diffusion-reaction-2d"]
    with h5py.File(path, "a") as f:
        del f["0007/data"]
        f["0007/data"] = np.zeros((101, 4, 4, 1), np.float32)
    with pytest.raises(DataError, match=r"0000/data is \(101, 4, 4, 2\), 0007/data is \(101, 4, 4, 1\)"):
        load("diffusion-reaction-2d", tmp_path)
    with h5py.File(path, "a") as f:
        del f["0007/data"]
    with pytest.raises(DataError, match=r"expected key 'data'.*'/0007' has \[grid\]"):
        load("diffusion-reaction-2d", tmp_path)


def test_single_channel_file_cannot_feed_orca_reaction_diffusion_channels(tmp_path):
    WRITERS["shallow-water"](tmp_path)  # one channel per sample
    (tmp_path / FILE_NAMES["shallow-water"]).rename(tmp_path / FILE_NAMES["diffusion-reaction-2d"])
    with pytest.raises(DataError, match=r"channels \[1\] for the target, found 1 channel"):
        load("diffusion-reaction-2d", tmp_path)


def test_non_finite_values_are_refused(tmp_path):
    WRITERS["diffusion-reaction-1d"](tmp_path)
    path = tmp_path / FILE_NAMES["diffusion-reaction-1d"]
    with h5py.File(path, "a") as f:
        f["tensor"][3, 29, 5] = np.nan  # a target value
    with pytest.raises(DataError, match=r"targets \(T\) read from tensor to be finite.*1 NaN or infinite value"):
        load("diffusion-reaction-1d", tmp_path)
    with h5py.File(path, "a") as f:
        f["tensor"][3, 29, 5] = 0.0
        f["tensor"][3, 50, 5] = np.inf  # a time step no task reads
    assert np.isfinite(load("diffusion-reaction-1d", tmp_path).y_train).all()


def test_too_few_samples_and_too_few_time_steps(tmp_path):
    path = tmp_path / FILE_NAMES["burgers"]
    with h5py.File(path, "w") as f:
        f["tensor"] = np.zeros((9, 11, 8), np.float32)  # int(0.1 * 9) = 0 test samples
    with pytest.raises(DataError, match="9 samples are too few.*9 train / 0 test"):
        load("burgers", tmp_path)
    with h5py.File(path, "w") as f:
        f["tensor"] = np.zeros((20, 1, 8), np.float32)
    with pytest.raises(DataError, match="at least 2 time steps.*found 1"):
        load("burgers", tmp_path)


def test_not_hdf5_is_a_data_error(tmp_path):
    (tmp_path / FILE_NAMES["darcy"]).write_text("<html>404</html>")
    with pytest.raises(DataError, match="Cannot read .* as HDF5"):
        load("darcy", tmp_path)


def test_unknown_scale_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no scale 'huge'\. Valid scales: mini, paper\. Fix: pass --scale mini"):
        load("advection", tmp_path, scale="huge")
