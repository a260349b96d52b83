"""NAS-Bench-360 loaders on tiny files in the published formats: shapes, values, errors."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_files_nasbench360 import SIZES, WRITERS, darcy_fields, psicov_protein

from trainables.errors import DataError
from trainables.losses.task import TASK_LOSSES
from trainables.metrics import METRICS
from trainables.registry import TASKS
from trainables.tasks import nasbench360 as nb
from trainables.tasks.data import denormalize

torch.set_num_threads(1)
TASK_NAMES = sorted(WRITERS)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """One data directory holding every task's tiny files (they do not collide)."""
    root = tmp_path_factory.mktemp("nb360")
    for write in WRITERS.values():
        write(root)
    return root


@pytest.fixture(scope="module")
def loaded(tiny_root) -> dict:
    return {name: TASKS.get(name).loader(tiny_root, "paper", 0) for name in TASK_NAMES}


def _fresh(tmp_path: Path, task: str) -> Path:
    WRITERS[task](tmp_path)
    return tmp_path


def _load(task: str, root: Path, seed: int = 0):
    return TASKS.get(task).loader(root, "paper", seed)


# ---------------------------------------------------------------------- registry entries


def test_all_nine_tasks_are_registered_without_mini():
    for name in TASK_NAMES:
        spec = TASKS.get(name)
        assert spec.loader.__module__ == nb.__name__
        assert not spec.has_mini and spec.loss in TASK_LOSSES and spec.metric in METRICS
        assert spec.defaults.optimizer in ("adamw", "adam", "sgd")


# MoNA Appendix Table 9: batch size, epochs, grad. accum., optimizer, learning rate, weight decay
TABLE9 = {
    "cifar100": (32, 60, 32, "sgd", 1e-4, 1e-3),
    "ninapro": (32, 60, 1, "adam", 1e-4, 1e-5),
    "fsd50k": (32, 100, 1, "adam", 1e-4, 5e-5),
    "darcyflow": (4, 100, 1, "adamw", 1e-3, 5e-3),
    "psicov": (1, 10, 32, "adam", 5e-6, 1e-5),
    "cosmic": (4, 60, 1, "adamw", 1e-3, 0.0),
    "ecg": (4, 15, 16, "sgd", 1e-6, 1e-1),
    "satellite": (16, 60, 4, "adamw", 3e-5, 3e-6),
    "deepsea": (16, 13, 1, "adam", 1e-5, 0.0),
}


@pytest.mark.parametrize("task", TASK_NAMES)
def test_defaults_are_table9(task):
    d = TASKS.get(task).defaults
    keys = ("batch_size", "epochs", "grad_accum", "optimizer", "lr", "weight_decay")
    assert tuple(getattr(d, k) for k in keys) == TABLE9[task]


def test_losses_follow_orca_not_the_shifted_table8_row():
    losses = {name: TASKS.get(name).loss for name in TASK_NAMES}
    assert losses == {
        "cifar100": "cross_entropy", "ninapro": "focal", "fsd50k": "bce_pos10",
        "darcyflow": "relative_l2", "psicov": "mse", "cosmic": "bce_ignore_mask",
        "ecg": "cross_entropy", "satellite": "cross_entropy", "deepsea": "bce_pos4",
    }


@pytest.mark.parametrize("task", TASK_NAMES)
def test_scale_mini_is_refused(task, tmp_path):
    with pytest.raises(ValueError, match=r"no scale 'mini'\. Valid scales: paper \(it has no embedded"):
        TASKS.get(task).loader(tmp_path, "mini", 0)


# ------------------------------------------------------------------ shapes and ranges


@pytest.mark.parametrize("task", TASK_NAMES)
def test_loader_returns_documented_shapes_dtypes_and_ranges(task, loaded):
    spec, raw = TASKS.get(task), loaded[task]
    shape = spec.input_shape if task != "psicov" else (57, 40, 40)  # window = 30 + 10
    assert raw.x_train.dtype == raw.x_test.dtype == np.float32
    assert raw.x_train.shape[1:] == raw.x_test.shape[1:] == shape
    assert raw.num_outputs == spec.num_outputs
    n_train, n_test = SIZES[task]
    if n_train is not None:
        assert (len(raw.x_train), len(raw.x_test)) == (n_train, n_test)
    assert len(raw.y_train) == len(raw.x_train) and len(raw.y_test) == len(raw.x_test)
    for x in (raw.x_train, raw.x_test):
        assert np.isfinite(x).all()
    if spec.output == "classification" and task not in ("fsd50k", "deepsea"):
        for y in (raw.y_train, raw.y_test):
            assert y.dtype == np.int64 and y.ndim == 1 and 0 <= y.min() and y.max() < spec.num_outputs
    elif task in ("fsd50k", "deepsea"):  # multi-label
        for y in (raw.y_train, raw.y_test):
            assert y.dtype == np.float32 and y.shape[1] == spec.num_outputs
            assert set(np.unique(y)) <= {0.0, 1.0}
    else:
        channels = 2 if task == "cosmic" else 1
        for y in (raw.y_train, raw.y_test):
            assert y.dtype == np.float32 and y.shape[1:] == (channels, *shape[1:])


def test_tiny_files_stay_small(tmp_path):
    for task, write in WRITERS.items():
        root = tmp_path / task
        write(root)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        assert size < 2_000_000, (task, size)


# ------------------------------------------------------------------- values, per task


def test_cifar100_standardises_like_orca(tiny_root, loaded):
    with open(tiny_root / "cifar-100-python" / "test", "rb") as f:
        batch = pickle.load(f)
    raw = loaded["cifar100"]
    pixel = batch[b"data"][2].reshape(3, 32, 32)[1, 4, 7]  # image 2, green channel, row 4, col 7
    assert raw.x_test[2, 1, 4, 7] == pytest.approx((pixel / 255 - 0.4867) / 0.2565, rel=1e-5)
    assert raw.y_test.tolist() == batch[b"fine_labels"]


def test_ninapro_joins_train_and_val_and_transposes(tiny_root, loaded):
    train = np.load(tiny_root / "ninaPro" / "ninapro_train.npy")
    val = np.load(tiny_root / "ninaPro" / "ninapro_val.npy")
    raw = loaded["ninapro"]
    assert raw.x_train[3, 0, 5, 40] == train[3, 40, 5]
    assert raw.x_train[12 + 1, 0, 15, 2] == val[1, 2, 15]
    labels = np.concatenate([np.load(tiny_root / "ninaPro" / f"label_{s}.npy") for s in ("train", "val")])
    assert raw.y_train.tolist() == labels.tolist()


def test_fsd50k_features_labels_and_chunk_choice(tiny_root, loaded):
    from scipy.io import wavfile

    raw = loaded["fsd50k"]
    label_map = json.loads((tiny_root / "chunks" / "lbl_map.json").read_text())
    rows = nb._read_fsd_manifest(tiny_root / "chunks" / "eval.csv")
    for i, row in enumerate(rows):
        expected = np.zeros(200, np.float32)
        expected[[label_map[n] for n in row["labels"].split(",")]] = 1
        np.testing.assert_array_equal(raw.y_test[i], expected)
    assert (raw.x_test[:, 0, :, -1] == 0).all()  # ORCA's F.pad(real, (0, 1))
    np.testing.assert_allclose(raw.x_test[:, 0, :, :-1].mean(axis=(1, 2)), 0, atol=1e-4)
    # the 0.5 s chunk (clip 201, chunk 1: row 4) is tiled to 1 s before the features
    _, half = wavfile.read(tiny_root / "chunks" / "eval_audio" / "201_1.wav")
    tiled = np.tile(half.astype(np.float32) / 32768, 3)[:22050]
    np.testing.assert_allclose(raw.x_test[4, 0, :, :-1], nb.log_mel(tiled[None])[0], atol=1e-4)
    # training: clips in sorted order, each sample is one of its clip's two chunks
    train_rows = nb._read_fsd_manifest(tiny_root / "chunks" / "tr.csv")
    for i, ext in enumerate(sorted({r["ext"] for r in train_rows})):
        candidates = []
        for j in range(2):
            _, wave = wavfile.read(tiny_root / "chunks" / "tr_audio" / f"{ext}_{j}.wav")
            candidates.append(nb.log_mel((wave.astype(np.float32) / 32768)[None])[0])
        assert min(np.abs(raw.x_train[i, 0, :, :-1] - c).max() for c in candidates) < 1e-4


def test_fsd50k_training_chunk_is_seeded(tiny_root):
    a, b = _load("fsd50k", tiny_root, seed=0), _load("fsd50k", tiny_root, seed=0)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    others = [_load("fsd50k", tiny_root, seed=s).x_train for s in (1, 2, 3)]
    assert any(not np.array_equal(a.x_train, o) for o in others)


def test_log_mel_of_a_pure_tone_peaks_at_its_mel_band():
    t = np.arange(22050) / 22050
    feats = nb.log_mel(np.sin(2 * np.pi * 1000.0 * t)[None].astype(np.float32))[0]  # (96, 101)
    assert feats.shape == (96, 101)
    fb = nb.mel_filterbank().numpy()  # (961, 96); bin spacing 11025 / 960 Hz
    assert feats[:, 50].argmax() == fb[round(1000 / (11025 / 960))].argmax()


def test_darcyflow_standardises_and_denormalises(tiny_root, loaded):
    import scipy.io

    raw = loaded["darcyflow"]
    train = scipy.io.loadmat(tiny_root / "piececonst_r421_N1024_smooth1.mat")
    test = scipy.io.loadmat(tiny_root / "piececonst_r421_N1024_smooth2.mat")
    sol_test = test["sol"][:, ::5, ::5]  # (6, 85, 85)
    restored = denormalize(raw.y_test, raw.y_mean, raw.y_std)[:, 0]
    np.testing.assert_allclose(restored, sol_test, rtol=1e-5, atol=1e-7)
    coeff = train["coeff"][:, ::5, ::5].astype(np.float64)
    # one point by hand: (c - mean) / (unbiased std + 1e-5), train statistics also for test
    c = coeff[:, 10, 20]
    expected = (test["coeff"][3, 50, 100] - c.mean()) / (c.std(ddof=1) + 1e-5)
    assert raw.x_test[3, 0, 10, 20] == pytest.approx(expected, rel=1e-5)
    assert raw.x_train[0, 1, 7, 42] == pytest.approx(42 / 84)  # x: column / 84
    assert raw.x_train[0, 2, 7, 42] == pytest.approx(7 / 84)  # y: row / 84


def test_darcyflow_reads_matlab_v73_hdf5(tmp_path, loaded):
    import h5py

    rng = np.random.default_rng(sum(map(ord, "darcyflow")))  # the writer's stream
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 ."
    header = text.ljust(116) + bytes(8) + b"\x00\x02IM"  # text, subsystem offset, version, endian
    for name, n in (("piececonst_r421_N1024_smooth1.mat", 12), ("piececonst_r421_N1024_smooth2.mat", 6)):
        with h5py.File(tmp_path / name, "w", userblock_size=512) as f:  # v7.3: arrays transposed
            for key, value in darcy_fields(n, rng).items():
                f[key] = value.T
        with open(tmp_path / name, "r+b") as f:  # MATLAB's 128-byte header in the user block
            f.write(header)
    raw = _load("darcyflow", tmp_path)
    np.testing.assert_allclose(raw.x_train, loaded["darcyflow"].x_train, rtol=1e-6)
    np.testing.assert_allclose(raw.y_test, loaded["darcyflow"].y_test, rtol=1e-6)


def test_psicov_features_padding_and_targets(tiny_root, loaded):
    raw = loaded["psicov"]
    base = tiny_root / "protein" / "psicov"
    pdb = (tiny_root / "protein" / "psicov.lst").read_text().split()[0]
    with open(base / "features" / f"{pdb}.pkl", "rb") as f:
        feats = pickle.load(f)
    dist = np.load(base / "distance" / f"{pdb}-cb.npy", allow_pickle=True)[2]
    x, y = raw.x_test[0], raw.y_test[0, 0]  # (57, 40, 40), (40, 40); protein at rows 5..34
    assert x[0, 5 + 3, 5 + 9] == feats["ss"][0, 9] and x[1, 5 + 3, 5 + 9] == feats["ss"][0, 3]
    assert x[6, 5 + 2, 5 + 4] == feats["pssm"][4, 0]  # first PSSM column, row copy
    assert x[54, 5 + 2, 5 + 4] == feats["ccmpred"][2, 4] and x[56, 5 + 2, 5 + 4] == feats["potential"][2, 4]
    assert (x[:, :5] == 0).all() and (x[:, 35:] == 0).all()
    assert y[5 + 2, 5 + 20] == pytest.approx(max(dist[2, 20], 1.0))
    assert y[5 + 4, 5 + 4] == pytest.approx((max(dist[4, 3], 1) + max(dist[4, 5], 1)) / 2)  # diagonal rule
    assert (y[:5] == 100).all() and (y[35:] == 100).all()
    assert raw.y_train.max() <= 16.0 and (raw.y_train[:, 0, :5] == 16.0).all()  # clipped at 16
    perfect = METRICS["mae8"].fn(raw.y_test, raw.y_test)
    assert perfect == 0.0


def test_psicov_crops_long_proteins_with_the_seed(tiny_root, monkeypatch):
    monkeypatch.setattr(nb, "PSICOV_MAX_WINDOW", 32)  # proteins padded to 40 get cropped
    a, b, c = (_load("psicov", tiny_root, seed=s) for s in (0, 0, 1))
    assert a.x_train.shape[1:] == (57, 32, 32)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_cosmic_crops_and_carries_the_ignore_mask(tiny_root, loaded):
    raw = loaded["cosmic"]
    listing = np.load(tiny_root / "cosmic" / "train_dirs.npy")
    first = np.load(tiny_root / listing[0][2:])  # (3, 192, 192)
    np.testing.assert_array_equal(raw.x_train[0, 0], first[0, 64:192, 64:192])
    np.testing.assert_array_equal(raw.y_train[0], first[1:, 64:192, 64:192])
    assert raw.y_train[:, 1].any() and not raw.y_test[:, 1].any()  # test files have no ignore mask
    logits = np.where(raw.y_test[:, :1] > 0, 5.0, -5.0)
    assert METRICS["one_minus_auroc_pixels"].fn(logits, raw.y_test) == 0.0


def _orca_ecg_windows(signal: np.ndarray, label: int) -> list[np.ndarray]:
    stride = {0: 500, 1: 83, 2: 250, 3: 25}[label]
    return [signal[j:j + 1000] for j in range(0, len(signal) - 1000, stride)]


def test_ecg_split_standardisation_and_windows(tiny_root, loaded):
    from sklearn.model_selection import train_test_split

    with open(tiny_root / "challenge2017.pkl", "rb") as f:
        content = pickle.load(f)
    labels = [{"N": 0, "A": 1, "O": 2, "~": 3}[s] for s in content["label"]]
    signals = [(d - d.mean()) / d.std() for d in content["data"]]
    _, test = train_test_split(np.arange(len(signals)), test_size=0.1, random_state=0)
    windows, window_labels = [], []
    for i in test:
        cut = _orca_ecg_windows(signals[i], labels[i])
        windows += cut
        window_labels += [labels[i]] * len(cut)
    raw = loaded["ecg"]
    np.testing.assert_allclose(raw.x_test[:, 0], np.array(windows), rtol=1e-5, atol=1e-6)
    assert raw.y_test.tolist() == window_labels


def test_satellite_labels_shift_to_zero(tiny_root, loaded):
    content = np.load(tiny_root / "satellite_test.npy", allow_pickle=True)[()]
    assert loaded["satellite"].y_test.tolist() == (content["label"] - 1).tolist()
    np.testing.assert_allclose(loaded["satellite"].x_test[:, 0], content["data"], rtol=1e-6)


def test_deepsea_joins_train_and_val_and_transposes(tiny_root, loaded):
    npz = np.load(tiny_root / "deepsea_filtered.npz")
    raw = loaded["deepsea"]
    np.testing.assert_array_equal(raw.x_train[:8], npz["x_train"].transpose(0, 2, 1))
    np.testing.assert_array_equal(raw.x_train[8:], npz["x_val"].transpose(0, 2, 1))
    np.testing.assert_array_equal(raw.y_train, np.concatenate([npz["y_train"], npz["y_val"]]))


# ------------------------------------------------------------------------ missing files


@pytest.mark.parametrize("task", TASK_NAMES)
def test_each_missing_data_file_is_named(task, tmp_path):
    for rel in TASKS.get(task).data_files:
        root = _fresh(tmp_path / rel.replace("/", "_"), task)
        target = root / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        with pytest.raises(DataError) as err:
            _load(task, root)
        message = str(err.value)
        assert rel in message and str(root) in message and "--data-dir" in message, message


# ---------------------------------------------------------------------- malformed files


def _rewrite_pickle(path: Path, change) -> None:
    with open(path, "rb") as f:
        content = pickle.load(f, encoding="bytes") if "cifar" in str(path) else pickle.load(f)
    change(content)
    path.write_bytes(pickle.dumps(content, protocol=2))


def _raises(task: str, root: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as err:
        _load(task, root)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_cifar_pickle_missing_key_and_bad_labels(tmp_path):
    root = _fresh(tmp_path, "cifar100")
    path = root / "cifar-100-python" / "train"
    _rewrite_pickle(path, lambda c: c.pop(b"fine_labels"))
    _raises("cifar100", root, str(path), "b'fine_labels'")
    WRITERS["cifar100"](root)
    _rewrite_pickle(path, lambda c: c[b"fine_labels"].__setitem__(0, 100))
    _raises("cifar100", root, str(path), "[0, 99]", "100")


def test_a_pickle_naming_a_foreign_global_is_refused(tmp_path):
    root = _fresh(tmp_path, "ecg")

    class Payload:
        # eval, not print: once Ray is imported in the process, builtins.print is Ray's
        # tqdm-aware replacement and pickles under Ray's name.
        def __reduce__(self):
            return (eval, ("print('this would run')",))

    (root / "challenge2017.pkl").write_bytes(pickle.dumps({"data": Payload(), "label": []}))
    _raises("ecg", root, "challenge2017.pkl", "refused global builtins.eval")


def test_npy_wrong_shape_and_nan(tmp_path):
    root = _fresh(tmp_path, "ninapro")
    path = root / "ninaPro" / "ninapro_val.npy"
    np.save(path, np.zeros((4, 52, 15), np.float32))
    _raises("ninapro", root, str(path), "(N, 52, 16)", "(4, 52, 15)")
    bad = np.zeros((4, 52, 16), np.float32)
    bad[1, 2, 3] = np.nan
    np.save(path, bad)
    _raises("ninapro", root, str(path), "1 NaN")


def test_npz_missing_key_and_non_binary_labels(tmp_path):
    root = _fresh(tmp_path, "deepsea")
    path = root / "deepsea_filtered.npz"
    arrays = dict(np.load(path))
    np.savez(path, **{k: v for k, v in arrays.items() if k != "y_val"})
    _raises("deepsea", root, str(path), "'y_val'")
    arrays["y_test"] = arrays["y_test"] * 2
    np.savez(path, **arrays)
    _raises("deepsea", root, "'y_test'", "0/1")


def test_object_npy_missing_key_and_label_range(tmp_path):
    root = _fresh(tmp_path, "satellite")
    path = root / "satellite_test.npy"
    content = np.load(path, allow_pickle=True)[()]
    np.save(path, {"data": content["data"]}, allow_pickle=True)
    _raises("satellite", root, str(path), "'label'")
    np.save(path, {"data": content["data"], "label": content["label"] - 1}, allow_pickle=True)
    _raises("satellite", root, "[1, 24]")


def test_mat_missing_field_and_wrong_grid(tmp_path):
    import scipy.io

    root = _fresh(tmp_path, "darcyflow")
    path = root / "piececonst_r421_N1024_smooth2.mat"
    fields = darcy_fields(2, np.random.default_rng(0))
    scipy.io.savemat(path, {"coeff": fields["coeff"]})
    _raises("darcyflow", root, str(path), "'sol'")
    scipy.io.savemat(path, {"coeff": fields["coeff"][:, :420, :420], "sol": fields["sol"]})
    _raises("darcyflow", root, "'coeff'", "(N, 421, 421)", "(2, 420, 420)")


def test_fsd_manifest_column_label_name_and_missing_chunk(tmp_path):
    root = _fresh(tmp_path, "fsd50k")
    path = root / "chunks" / "eval.csv"
    text = path.read_text()
    first_label = nb._read_fsd_manifest(path)[0]["labels"].split(",")[0]
    path.write_text(text.replace(",ext", ",clip", 1))
    _raises("fsd50k", root, str(path), "'ext'")
    path.write_text(text.replace(first_label, "Not_a_class", 1))
    _raises("fsd50k", root, str(path), "'Not_a_class'")
    path.write_text(text)
    (root / "chunks" / "eval_audio" / "202_0.wav").unlink()
    _raises("fsd50k", root, "data/chunks/eval_audio/202_0.wav", "--data-dir")


def test_psicov_missing_feature_key_and_wrong_map(tmp_path):
    root = _fresh(tmp_path, "psicov")
    pdb = (root / "protein" / "psicov.lst").read_text().split()[0]
    feature = root / "protein" / "psicov" / "features" / f"{pdb}.pkl"
    _rewrite_pickle(feature, lambda c: c.pop("pssm"))
    _raises("psicov", root, str(feature), "'pssm'")
    WRITERS["psicov"](root)
    feats, dist = psicov_protein(30, np.random.default_rng(0))
    record = root / "protein" / "psicov" / "distance" / f"{pdb}-cb.npy"
    bad = np.empty(3, dtype=object)
    bad[0], bad[1], bad[2] = 30, feats["seq"], dist[:29, :29]
    np.save(record, bad, allow_pickle=True)
    _raises("psicov", root, str(record), "(30, 30)")


def test_cosmic_listed_file_missing_or_too_small(tmp_path):
    root = _fresh(tmp_path, "cosmic")
    listing = np.load(root / "cosmic" / "test_dirs.npy")
    path = root / listing[1][2:]
    np.save(path, np.zeros((2, 100, 100), np.uint8))
    _raises("cosmic", root, str(path), "H, W >= 192")
    path.unlink()
    _raises("cosmic", root, listing[1], "test_dirs.npy")


def test_ecg_unknown_label_and_constant_record(tmp_path):
    root = _fresh(tmp_path, "ecg")
    path = root / "challenge2017.pkl"
    _rewrite_pickle(path, lambda c: c["label"].__setitem__(3, "X"))
    _raises("ecg", root, str(path), "'label' item 3", "'X'")
    WRITERS["ecg"](root)
    _rewrite_pickle(path, lambda c: c["data"].__setitem__(5, np.ones(1500)))
    _raises("ecg", root, "'data' item 5", "non-constant")


def test_psicov_missing_per_protein_file_is_named(tmp_path):
    root = _fresh(tmp_path, "psicov")
    pdb = (root / "protein" / "deepcov.lst").read_text().splitlines()[3].split()[0]
    (root / "protein" / "deepcov" / "features" / f"{pdb}.pkl").unlink()
    _raises("psicov", root, f"{pdb}.pkl", "protein/deepcov/features", str(root), "--data-dir")
