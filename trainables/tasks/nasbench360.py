"""NAS-Bench-360 tasks other than ``spherical`` (Tu et al., NeurIPS 2022), read as published.

Nine tasks, each read from the files NAS-Bench-360 distributes (https://nb360.ml.cmu.edu)
the way ORCA's ``src/data_loaders.py`` reads them (Shen et al., "Cross-Modal Fine-Tuning:
Align then Refine", ICML 2023, https://github.com/sjunhongshen/ORCA), with losses and
metrics from ORCA's ``src/task_configs.py`` and stage-2 defaults from the MoNA paper
(arXiv 2024), Appendix Table 9. Shapes are per sample:

=========  ====  ==============  =======  ==================  ==========================
task       dims  input           outputs  loss                metric
=========  ====  ==============  =======  ==================  ==========================
cifar100   2D    3 x 32 x 32     100      cross_entropy       error_rate
ninapro    2D    1 x 16 x 52     18       focal               error_rate
fsd50k     2D    1 x 96 x 102    200      bce_pos10           one_minus_map
darcyflow  2D    3 x 85 x 85     1 dense  relative_l2         relative_l2
psicov     2D    57 x 512 x 512  1 dense  mse                 mae8
cosmic     2D    1 x 128 x 128   1 dense  bce_ignore_mask     one_minus_auroc_pixels
ecg        1D    1 x 1000        4        cross_entropy       one_minus_macro_f1
satellite  1D    1 x 46          24       cross_entropy       error_rate
deepsea    1D    4 x 1000        36       bce_pos4            one_minus_auroc_labels
=========  ====  ==============  =======  ==================  ==========================

Every file is checked on reading, with the checks of ``trainables.tasks.files``: a missing
file raises ``DataError`` naming the file, the directory looked in and where to get it; a
malformed one (missing key, wrong per-sample shape, labels out of range, NaN) names the
file, the key, and what was expected and found. Pickles (CIFAR-100 batches, ECG, PSICOV
features, object ``.npy`` files) are read only through ``safe_pickle.restricted_load``:
numpy arrays and plain containers, nothing else.
The published train/test split is kept; the validation split is carved from the training
data by ``carve_validation`` (ORCA's own validation carving and its model selection on the
test set are not used). Where ORCA folds a published validation file into training
(NinaPro, DeepSEA) we do the same.

Memory (float32, whole arrays in RAM; ``RawTask`` holds arrays, and carving the validation
split copies the training set once more): CIFAR-100 ~0.7 GB; FSD50K 39 KB per chunk (~1.4 GB
for one chunk of each of ~37K training clips, plus every test chunk); ECG ~1.3 GB (~330K
windows of 1,000); Satellite ~0.2 GB (1M x 46); DeepSEA ~4 GB (250K x 4 x 1,000); Cosmic
~1 GB. PSICOV at window 512
needs N x 58 x 512 x 512 x 4 B: ~210 GB for DeepCov's 3,456 training proteins; the loader
refuses with a ``MemoryError`` when that exceeds the machine's memory. The published files
of Satellite and ECG are pickles and DeepSEA's is an ``.npz``, so none can be memory-mapped;
plain ``.npy`` arrays (NinaPro) are read with ``mmap_mode="r"`` before the float32 copy.

Deviations (all tasks):
    - No training-time augmentation: ``RawTask`` holds fixed arrays. Dropped: CIFAR-100's
      random crop (padding 4) and horizontal flip, FSD50K's background-noise mixing,
      SpecAugment and wrap/constant padding, Cosmic's random sky-background offset (which
      ORCA also applies to its test set, making its test metric random).
    - Train and test orders are as in the files (ORCA shuffles them with the global RNG;
      our training loop shuffles every epoch, and metrics do not depend on order).

Deviations (per task):
    - fsd50k: ORCA computes log-mel features from the 1 s wav chunks at every access. We
      compute them once, at load time, with torchaudio's ``MelSpectrogram`` recipe
      reimplemented in torch (HTK mel scale, no filter norm, periodic Hann window, reflect
      padding; torchaudio is not a dependency) and librosa's ``power_to_db`` (ref 1,
      amin 1e-10, top_db 80). Training: ORCA draws a random chunk of each clip at every
      epoch; we draw one chunk per clip once, seeded by ``seed``, keeping ORCA's epoch
      length (one sample per clip). Test: ORCA averages the logits of all chunks of a clip
      and scores clips; fixed arrays cannot group chunks, so every test chunk is a sample
      labelled with its clip's labels and the mAP is chunk-level. The published
      validation manifest (``val.csv``) is not used, as in ORCA.
    - darcyflow: the standardisation statistics are computed in float64 (ORCA: float32).
      ORCA's training loss compares de-normalised fields; see ``trainables.losses.task``.
    - psicov: the window is min(512, longest protein + 10 padding): identical to ORCA's 512
      whenever a protein has >= 502 residues, smaller otherwise (e.g. for test fixtures);
      the metric ignores padding either way, but the model's input resolution and the
      amount of padding it is trained on (target 16 there) shrink with the window.
      Proteins longer than the window are cropped at a random offset drawn once from
      ``seed`` (ORCA redraws at every access). MAE8 uses each protein's own extent, not
      the first protein's length (see ``trainables.metrics``).
    - ecg: records whose label is not one of N, A, O, ~ raise ``DataError`` (ORCA drops the
      label but keeps the record, misaligning data and labels); a constant record (zero
      standard deviation) raises instead of becoming NaN. The validation split is carved
      from training windows, so windows of one recording can fall on both sides.
    - cosmic: the ignore mask travels as a second target channel, (N, 2, 128, 128) =
      (cosmic-ray mask, ignore mask); the loss and metric apply ORCA's ``mask`` with it.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from trainables.errors import DataError
from trainables.registry import TaskDefaults, register_task
from trainables.tasks.data import RawTask, require_scale
from trainables.tasks.files import (
    check_array,
    check_binary,
    check_finite,
    class_labels,
    describe,
    get_key,
    malformed,
    read_npy,
    read_pickle,
    require_file,
)

logger = logging.getLogger(__name__)

NB360_SITE = "https://nb360.ml.cmu.edu"  # named by ORCA's README for the NAS-Bench-360 data
NB360_S3 = "https://pde-xd.s3.amazonaws.com"  # where ORCA's loaders download from
PAPER = "NAS-Bench-360 (Tu et al., NeurIPS 2022); ORCA (Shen et al., ICML 2023)"


def _table9(batch: int, epochs: int, accum: int, optimizer: str, lr: float, wd: float,
            **extra: Any) -> TaskDefaults:
    """A column of MoNA's Table 9 as stage-2 defaults (plus task-specific ``extra`` fields)."""
    return TaskDefaults(lr=lr, weight_decay=wd, batch_size=batch, grad_accum=accum, epochs=epochs,
                        optimizer=optimizer, **extra)


# MoNA (arXiv 2024) Appendix Table 9, stage-2 fine-tuning: batch size, epochs, gradient
# accumulation, optimizer, learning rate, weight decay.
TABLE9 = {
    "cifar100": _table9(32, 60, 32, "sgd", 1e-4, 1e-3),
    "ninapro": _table9(32, 60, 1, "adam", 1e-4, 1e-5),
    "fsd50k": _table9(32, 100, 1, "adam", 1e-4, 5e-5),
    "darcyflow": _table9(4, 100, 1, "adamw", 1e-3, 5e-3),
    "psicov": _table9(1, 10, 32, "adam", 5e-6, 1e-5),
    "cosmic": _table9(4, 60, 1, "adamw", 1e-3, 0.0),
    # target_seq_len: ORCA's configs/ecg.yaml, 1000 samples -> 50 tokens of 20
    "ecg": _table9(4, 15, 16, "sgd", 1e-6, 1e-1, target_seq_len=64),
    "satellite": _table9(16, 60, 4, "adamw", 3e-5, 3e-6),
    "deepsea": _table9(16, 13, 1, "adam", 1e-5, 0.0),
}


def _nb360_task(name: str, paper: str, **meta: Any) -> Callable[[Callable], Callable]:
    """``register_task`` for a NAS-Bench-360 task: Table 9's defaults, published files only."""
    return register_task(name, paper=f"{PAPER}; {paper}", defaults=TABLE9[name],
                         **meta)


# ------------------------------------------------------------------------------ CIFAR-100

CIFAR_FILES = {"train": "cifar-100-python/train", "test": "cifar-100-python/test"}
CIFAR_SHAPE = (3, 32, 32)
CIFAR_CLASSES = 100
CIFAR_MEAN = np.array([0.5071, 0.4867, 0.4408], dtype=np.float32)  # ORCA's load_cifar
CIFAR_STD = np.array([0.2675, 0.2565, 0.2761], dtype=np.float32)
CIFAR_SOURCE = (
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, the archive ORCA fetches "
    "through torchvision's CIFAR100; unpack it so that cifar-100-python/ sits in the "
    "data directory"
)


@_nb360_task(
    "cifar100", modality="2d", output="classification", input_shape=CIFAR_SHAPE,
    num_outputs=CIFAR_CLASSES, loss="cross_entropy", metric="error_rate",
    data_files=tuple(CIFAR_FILES.values()),
    paper="Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)",
)
def load_cifar100(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """CIFAR-100 from the python-version pickles, scaled to [0, 1] and standardised per
    channel with ORCA's mean and std.

    Returns:
        float32 (N, 3, 32, 32) images and int64 fine labels in [0, 100).

    Raises:
        DataError: if a batch file is missing or malformed.
    """
    require_scale("cifar100", scale)
    root = Path(data_root)
    split = {}
    for name, rel in CIFAR_FILES.items():
        split[name] = _read_cifar_batch(require_file(root, rel, "cifar100", CIFAR_SOURCE))
    return RawTask(
        x_train=split["train"][0], y_train=split["train"][1],
        x_test=split["test"][0], y_test=split["test"][1],
        num_outputs=CIFAR_CLASSES, source="file:cifar-100-python/{train,test}",
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle(path, encoding="bytes")  # keys are bytes: b"data", b"fine_labels"
    data = check_array(get_key(batch, b"data", path), path, "key b'data'", (3072,), kinds="u")
    labels = class_labels(get_key(batch, b"fine_labels", path), CIFAR_CLASSES, path,
                          "key b'fine_labels'")
    if len(labels) != len(data):
        raise malformed(path, "key b'fine_labels'", f"{len(data)} labels (one per image)",
                        f"{len(labels)}")
    x = data.reshape(-1, *CIFAR_SHAPE).astype(np.float32) / np.float32(255.0)  # (N, 3072) -> (N, 3, 32, 32)
    x -= CIFAR_MEAN[:, None, None]
    x /= CIFAR_STD[:, None, None]
    return x, labels


# ------------------------------------------------------------------------------- NinaPro

NINAPRO_DIR = "ninaPro"
NINAPRO_SPLITS = ("train", "val", "test")
NINAPRO_STORED = (52, 16)  # per sample as stored; ORCA permutes to (16, 52) and adds a channel
NINAPRO_SHAPE = (1, 16, 52)
NINAPRO_CLASSES = 18
NINAPRO_SOURCE = f"NAS-Bench-360's NinaPro DB5 files, {NB360_SITE}"


def _ninapro_files(split: str) -> tuple[str, str]:
    return f"{NINAPRO_DIR}/ninapro_{split}.npy", f"{NINAPRO_DIR}/label_{split}.npy"


@_nb360_task(
    "ninapro", modality="2d", output="classification", input_shape=NINAPRO_SHAPE,
    num_outputs=NINAPRO_CLASSES, loss="focal", metric="error_rate",
    data_files=tuple(f for s in NINAPRO_SPLITS for f in _ninapro_files(s)),
    paper="Atzori et al., NinaPro (2012)",
)
def load_ninapro(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """NinaPro EMG windows: training = the published train + val files (ORCA without
    ``valid_split``), test = the test files.

    Returns:
        float32 (N, 1, 16, 52) and int64 labels in [0, 18).
    """
    require_scale("ninapro", scale)
    root = Path(data_root)
    parts = {split: _read_ninapro_split(root, split) for split in NINAPRO_SPLITS}
    x_train = np.concatenate([parts["train"][0], parts["val"][0]])
    y_train = np.concatenate([parts["train"][1], parts["val"][1]])
    return RawTask(
        x_train=x_train, y_train=y_train, x_test=parts["test"][0], y_test=parts["test"][1],
        num_outputs=NINAPRO_CLASSES, source="file:ninaPro/{ninapro,label}_{train,val,test}.npy",
    )


def _read_ninapro_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    data_rel, label_rel = _ninapro_files(split)
    data_path = require_file(root, data_rel, "ninapro", NINAPRO_SOURCE)
    label_path = require_file(root, label_rel, "ninapro", NINAPRO_SOURCE)
    data = check_array(read_npy(data_path, encoding="bytes", mmap=True), data_path, "the array",
                       NINAPRO_STORED, kinds="uif")
    labels = class_labels(read_npy(label_path, encoding="bytes"), NINAPRO_CLASSES,
                          label_path, "the array")
    if len(labels) != len(data):
        raise malformed(label_path, "the array", f"{len(data)} labels (one per window of "
                        f"{data_path.name})", f"{len(labels)}")
    # (N, 52, 16) -> (N, 1, 16, 52)
    x = np.ascontiguousarray(data.transpose(0, 2, 1), dtype=np.float32)[:, None]
    check_finite(x, data_path, "the array")
    return x, labels


# -------------------------------------------------------------------------------- FSD50K

FSD_TRAIN = "chunks/tr.csv"
FSD_TEST = "chunks/eval.csv"
FSD_LABEL_MAP = "chunks/lbl_map.json"
FSD_COLUMNS = ("files", "labels", "ext")
FSD_CLASSES = 200
FSD_SHAPE = (1, 96, 102)
FSD_SAMPLE_RATE = 22050
FSD_CHUNK = FSD_SAMPLE_RATE  # 1 s chunks; shorter ones are tiled to 1 s (min_duration=1)
FSD_N_FFT = 96 * 20  # 1920 -> 961 frequency bins
FSD_WIN = int(FSD_SAMPLE_RATE * 0.03)  # 661 samples (30 ms)
FSD_HOP = int(FSD_SAMPLE_RATE * 0.01)  # 220 samples (10 ms): 1 + 22050 // 220 = 101 frames
FSD_N_MELS = 96
FSD_TOP_DB = 80.0  # librosa.power_to_db's default
FSD_AMIN = 1e-10
FSD_PATH_PREFIX = 4  # ORCA reads a manifest path f as <data dir> + f[4:] (drops "data")
FSD_BATCH = 256  # chunks per STFT call
FSD_SOURCE = (
    f"NAS-Bench-360's FSD50K chunks and manifests ({NB360_SITE}): 1 s wav chunks at "
    "22,050 Hz with chunks/{tr,val,eval}.csv and chunks/lbl_map.json"
)


@_nb360_task(
    "fsd50k", modality="2d", output="classification", input_shape=FSD_SHAPE,
    num_outputs=FSD_CLASSES, loss="bce_pos10", metric="one_minus_map",
    data_files=(FSD_TRAIN, FSD_TEST, FSD_LABEL_MAP),
    paper="Fonseca et al., FSD50K (2020)",
)
def load_fsd50k(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """FSD50K log-mel spectrograms of 1 s chunks, multi-label (200 classes).

    Training: one chunk per clip of ``chunks/tr.csv``, drawn with ``seed``. Test: every
    chunk of ``chunks/eval.csv`` with its clip's labels (see the module's Deviations).

    Returns:
        float32 (N, 1, 96, 102) and float32 (N, 200) multi-hot labels.
    """
    require_scale("fsd50k", scale)
    root = Path(data_root)
    label_map = _read_fsd_label_map(require_file(root, FSD_LABEL_MAP, "fsd50k", FSD_SOURCE))
    train_rows = _read_fsd_manifest(require_file(root, FSD_TRAIN, "fsd50k", FSD_SOURCE))
    test_rows = _read_fsd_manifest(require_file(root, FSD_TEST, "fsd50k", FSD_SOURCE))
    train_rows = _one_chunk_per_clip(train_rows, np.random.default_rng(seed))
    x_train, y_train = _fsd_arrays(root, train_rows, label_map, root / FSD_TRAIN)
    x_test, y_test = _fsd_arrays(root, test_rows, label_map, root / FSD_TEST)
    return RawTask(
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        num_outputs=FSD_CLASSES, source=f"file:chunks/{{tr,eval}}.csv(train one chunk/clip, seed={seed})",
    )


def _read_fsd_label_map(path: Path) -> dict[str, int]:
    try:
        mapping = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read {path}: expected JSON ({err}). Fix: download it again.") from err
    ok = isinstance(mapping, dict) and all(isinstance(v, int) for v in mapping.values())
    if not ok or sorted(mapping.values()) != list(range(FSD_CLASSES)):
        found = f"{len(mapping)} entries" if isinstance(mapping, dict) else describe(mapping)
        raise malformed(path, "the label map", f"{FSD_CLASSES} names mapped to 0..{FSD_CLASSES - 1}",
                        found)
    return mapping


def _read_fsd_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a chunk manifest (columns files, labels, ext), in file order."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FSD_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise malformed(path, f"columns {missing}", f"present (columns {list(FSD_COLUMNS)})",
                            f"columns {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise malformed(path, "the manifest", "at least one chunk", "no rows")
    return rows


def _one_chunk_per_clip(rows: list[dict[str, str]], rng: np.random.Generator) -> list[dict[str, str]]:
    """One row per clip (``ext``), clips in sorted order (ORCA's ``np.unique``), chunk drawn
    uniformly among the clip's rows as ORCA's ``SpectrogramDataset.__getitem__``."""
    by_clip: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_clip.setdefault(row["ext"], []).append(row)
    return [by_clip[ext][rng.integers(len(by_clip[ext]))] for ext in sorted(by_clip)]


def _fsd_arrays(root: Path, rows: list[dict[str, str]], label_map: dict[str, int],
                manifest: Path) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel features (N, 1, 96, 102) and multi-hot labels (N, 200) of manifest rows."""
    y = np.zeros((len(rows), FSD_CLASSES), dtype=np.float32)
    for i, row in enumerate(rows):
        for name in row["labels"].split(","):
            if name not in label_map:
                raise malformed(manifest, f"row {i + 1} column 'labels'",
                                "names from chunks/lbl_map.json", repr(name))
            y[i, label_map[name]] = 1.0
    x = np.zeros((len(rows), *FSD_SHAPE), dtype=np.float32)  # last column stays 0 (ORCA's F.pad)
    for start in range(0, len(rows), FSD_BATCH):
        batch = rows[start:start + FSD_BATCH]
        audio = np.stack([_read_chunk(root, row["files"], manifest) for row in batch])  # (B, 22050)
        x[start:start + len(batch), 0, :, :-1] = log_mel(audio)  # (B, 96, 101)
    return x, y


def _read_chunk(root: Path, name: str, manifest: Path) -> np.ndarray:
    """A mono 1 s chunk as float32 in [-1, 1], tiled to 1 s if shorter (ORCA's load_audio)."""
    from scipy.io import wavfile  # kept local: only FSD50K reads audio

    path = root / name[FSD_PATH_PREFIX:].lstrip("/")
    if not path.is_file():
        raise DataError(
            f"Task 'fsd50k': {manifest} lists chunk {name!r}, read (as ORCA does, dropping its "
            f"first {FSD_PATH_PREFIX} characters) as {path}, which does not exist. "
            f"Fix: download the chunks ({FSD_SOURCE}) into {root}, or pass --data-dir."
        )
    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read {path}: expected a wav file ({err}). Fix: download it again.") from err
    if rate != FSD_SAMPLE_RATE or data.ndim != 1 or len(data) == 0 or len(data) > FSD_CHUNK:
        raise malformed(path, "the audio", f"mono, {FSD_SAMPLE_RATE} Hz, 1 to {FSD_CHUNK} samples",
                        f"{rate} Hz, shape {data.shape}")
    audio = _pcm_to_float(data)
    if len(audio) < FSD_CHUNK:
        audio = np.tile(audio, FSD_CHUNK // len(audio) + 1)[:FSD_CHUNK]
    check_finite(audio, path, "the audio")
    return audio


def _pcm_to_float(data: np.ndarray) -> np.ndarray:
    """PCM samples to float32 in [-1, 1] as soundfile reads them (int16 / 2^15, ...)."""
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / np.float32(2.0 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32)


def mel_filterbank(n_freqs: int = FSD_N_FFT // 2 + 1, n_mels: int = FSD_N_MELS,
                   sample_rate: int = FSD_SAMPLE_RATE):
    """Triangular HTK-mel filters (n_freqs, n_mels), no normalisation, 0 Hz to sr / 2.

    torchaudio's ``melscale_fbanks(norm=None, mel_scale="htk")``: mel(f) = 2595 log10(1 + f/700);
    n_mels + 2 points equally spaced in mel; filter m rises from point m to m + 1 and falls
    to m + 2.

    >>> fb = mel_filterbank(5, 1, 8)  # bins at 0, 1, 2, 3, 4 Hz; one filter over 0..4 Hz
    >>> [round(v, 3) + 0.0 for v in fb[:, 0].tolist()]
    [0.0, 0.501, 0.999, 0.499, 0.0]
    """
    import torch

    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)  # (F,)
    m_max = 2595.0 * np.log10(1.0 + float(sample_rate // 2) / 700.0)
    m_pts = torch.linspace(0.0, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)  # (M + 2,)
    f_diff = f_pts[1:] - f_pts[:-1]  # (M + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (F, M + 2)
    down = -slopes[:, :-2] / f_diff[:-1]  # (F, M)
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """FSD50K features of ORCA's ``AudioParser(feature="melspectrogram")``.

    Power mel spectrogram (n_fft 1920, Hann window of 661, hop 220, 96 HTK mels, centred
    with reflect padding), then ``power_to_db`` (10 log10 max(S, 1e-10), floored at 80 dB
    below the chunk's maximum), then minus the chunk's mean (ORCA's ``+ top_db / 2`` before
    that cancels).

    Args:
        audio: (B, L) float waveforms at 22,050 Hz.

    Returns:
        (B, 96, 1 + L // 220) float32.
    """
    import torch

    wave = torch.as_tensor(audio, dtype=torch.float32)
    spec = torch.stft(
        wave, n_fft=FSD_N_FFT, hop_length=FSD_HOP, win_length=FSD_WIN,
        window=torch.hann_window(FSD_WIN), center=True, pad_mode="reflect",
        normalized=False, onesided=True, return_complex=True,
    ).abs() ** 2  # (B, 961, T)
    mel = torch.matmul(spec.transpose(1, 2), mel_filterbank()).transpose(1, 2)  # (B, 96, T)
    db = 10.0 * torch.log10(torch.clamp(mel, min=FSD_AMIN))
    peak = db.amax(dim=(1, 2), keepdim=True)
    db = torch.maximum(db, peak - FSD_TOP_DB)
    return (db - db.mean(dim=(1, 2), keepdim=True)).numpy()


# ----------------------------------------------------------------------------- Darcy flow

DARCY_TRAIN = "piececonst_r421_N1024_smooth1.mat"
DARCY_TEST = "piececonst_r421_N1024_smooth2.mat"
DARCY_FIELDS = ("coeff", "sol")
DARCY_GRID = 421  # published resolution
DARCY_SUB = 5  # ORCA's sub=5: every 5th point, (421 - 1) / 5 + 1 = 85
DARCY_SIDE = (DARCY_GRID - 1) // DARCY_SUB + 1  # 85
DARCY_N_TRAIN = 1000  # first 1,000 of smooth1
DARCY_N_TEST = 100  # first 100 of smooth2
DARCY_EPS = 1e-5  # UnitGaussianNormalizer's eps, added to the std
DARCY_SHAPE = (3, DARCY_SIDE, DARCY_SIDE)  # coefficient, x grid, y grid


@_nb360_task(
    "darcyflow", modality="2d", output="dense", input_shape=DARCY_SHAPE, num_outputs=1,
    loss="relative_l2", metric="relative_l2", data_files=(DARCY_TRAIN, DARCY_TEST),
    paper="Li et al., Fourier Neural Operator (ICLR 2021)",
)
def load_darcyflow(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Darcy flow (FNO data): coefficient field -> solution, subsampled by 5 to 85 x 85.

    As ORCA's ``load_darcy_flow``: inputs are the coefficient standardised pointwise with
    the training mean and std (+1e-5) plus two coordinate channels (x = column / 84,
    y = row / 84); targets are the solution standardised the same way with its own
    statistics, which ``y_mean`` / ``y_std`` undo for the metric.

    Returns:
        float32 (N, 3, 85, 85) inputs and (N, 1, 85, 85) standardised solutions.
    """
    require_scale("darcyflow", scale)
    root = Path(data_root)
    source = f"{NB360_S3}/{{name}}"
    train_path = require_file(root, DARCY_TRAIN, "darcyflow", source.format(name=DARCY_TRAIN))
    test_path = require_file(root, DARCY_TEST, "darcyflow", source.format(name=DARCY_TEST))
    coeff_tr, sol_tr = _read_darcy(train_path, DARCY_N_TRAIN)
    coeff_te, sol_te = _read_darcy(test_path, DARCY_N_TEST)
    if len(coeff_tr) < 2:
        raise malformed(train_path, "key 'coeff'", "at least 2 samples (to standardise)",
                        f"{len(coeff_tr)}")
    x_mean, x_std = _pointwise_stats(coeff_tr)
    y_mean, y_std = _pointwise_stats(sol_tr)
    grid = _darcy_grid()
    return RawTask(
        x_train=_darcy_inputs((coeff_tr - x_mean) / x_std, grid),
        y_train=((sol_tr - y_mean) / y_std)[:, None].astype(np.float32),
        x_test=_darcy_inputs((coeff_te - x_mean) / x_std, grid),
        y_test=((sol_te - y_mean) / y_std)[:, None].astype(np.float32),
        num_outputs=1, source=f"file:{DARCY_TRAIN}+{DARCY_TEST}(sub={DARCY_SUB})",
        y_mean=y_mean[None].astype(np.float32), y_std=y_std[None].astype(np.float32),
    )


def _read_mat_fields(path: Path) -> dict[str, np.ndarray]:
    """ORCA's ``MatReader``: MATLAB v7.3 (HDF5) via h5py with axes reversed, else v5 via scipy."""
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                return {k: np.transpose(f[k][()]) for k in DARCY_FIELDS if k in f}
        except OSError as err:
            raise DataError(f"Cannot read {path} as MATLAB v7.3 (HDF5): {err}. "
                            "Fix: download it again.") from err
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, NotImplementedError) as err:
        raise DataError(f"Cannot read {path}: expected a MATLAB .mat file ({err}). "
                        "Fix: download it again.") from err
    return {k: mat[k] for k in DARCY_FIELDS if k in mat}


def _read_darcy(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` coefficient and solution fields, subsampled to (n, 85, 85) float64."""
    fields = _read_mat_fields(path)
    out = []
    for key in DARCY_FIELDS:
        if key not in fields:
            raise malformed(path, f"key {key!r}", "present", f"only keys {sorted(fields)}")
        arr = check_array(fields[key], path, f"key {key!r}", (DARCY_GRID, DARCY_GRID), kinds="uif")
        arr = arr[:n, ::DARCY_SUB, ::DARCY_SUB][:, :DARCY_SIDE, :DARCY_SIDE].astype(np.float64)
        check_finite(arr, path, f"key {key!r}")
        out.append(arr)
    if len(out[0]) != len(out[1]) or len(out[0]) == 0:
        raise malformed(path, "key 'sol'", f"as many samples as 'coeff' ({len(out[0])}), >= 1",
                        f"{len(out[1])}")
    return out[0], out[1]


def _pointwise_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UnitGaussianNormalizer: per-point mean and unbiased std (+ eps) over samples."""
    return a.mean(axis=0), a.std(axis=0, ddof=1) + DARCY_EPS


def _darcy_grid() -> np.ndarray:
    """(2, 85, 85): channel 0 the x coordinate (column / 84), channel 1 y (row / 84)."""
    g = np.linspace(0.0, 1.0, DARCY_SIDE)
    gx, gy = np.meshgrid(g, g)  # "xy" indexing: gx[i, j] = g[j], gy[i, j] = g[i]
    return np.stack([gx, gy])


def _darcy_inputs(coeff: np.ndarray, grid: np.ndarray) -> np.ndarray:
    n = len(coeff)
    grids = np.broadcast_to(grid, (n, *grid.shape))  # (N, 2, 85, 85)
    return np.concatenate([coeff[:, None], grids], axis=1).astype(np.float32)  # (N, 3, 85, 85)


# -------------------------------------------------------------------------------- PSICOV

PSICOV_TRAIN_LIST = "protein/deepcov.lst"
PSICOV_TEST_LIST = "protein/psicov.lst"
PSICOV_SETS = ("deepcov", "psicov", "cameo")  # ORCA's search order; the last match wins
PSICOV_CHANNELS = 57
PSICOV_PAD = 10  # zero border, pad / 2 on each side
PSICOV_MAX_WINDOW = 512  # ORCA's OUTL
PSICOV_TRAIN_CLIP = 16.0  # label_engineering "16.0": training distances above 16 A -> 16
PSICOV_FILL = 100.0  # distance outside the protein
PSICOV_PAIR_FEATURES = ("ccmpred", "freecon", "potential")
PSICOV_SOURCE = f"NAS-Bench-360's PSICOV/DeepCov protein data ({NB360_SITE}), a protein/ folder"


@_nb360_task(
    "psicov", modality="2d", output="dense",
    input_shape=(PSICOV_CHANNELS, PSICOV_MAX_WINDOW, PSICOV_MAX_WINDOW), num_outputs=1,
    loss="mse", metric="mae8",
    # The lists; the per-protein files under protein/{deepcov,psicov}/{features,distance}/
    # are checked when read (tuner.spec checks data_files with is_file()).
    data_files=(PSICOV_TRAIN_LIST, PSICOV_TEST_LIST),
    paper="Adhikari, DEEPCON (Bioinformatics 2020)",
)
def load_psicov(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Inter-residue distances: DeepCov proteins for training, the 150 PSICOV ones for test.

    Features as ORCA's ``get_feature`` (57 channels: 3 secondary-structure, 22 PSSM, solvent
    accessibility and entropy, each as row and column copies, then CCMpred, FreeContact and
    the statistical potential), distances as ``get_map``; both padded by 5 on each side in a
    window of min(512, longest protein + 10) (features 0, distances 100 outside the protein;
    NaN -> 0 as ``PDNetDataset``). Training distances are clipped at 16 A.

    Returns:
        float32 (N, 57, W, W) features and (N, 1, W, W) distances.

    Raises:
        DataError: for missing or malformed files.
        MemoryError: when the arrays would not fit in this machine's memory.
    """
    require_scale("psicov", scale)
    root = Path(data_root)
    train = _read_list(require_file(root, PSICOV_TRAIN_LIST, "psicov", PSICOV_SOURCE))
    test = _read_list(require_file(root, PSICOV_TEST_LIST, "psicov", PSICOV_SOURCE))
    longest = max(_read_distances(root, pdb)[0] for pdb in (*train, *test))
    window = min(PSICOV_MAX_WINDOW, longest + PSICOV_PAD)
    _check_memory(len(train) + len(test), window)
    rng = np.random.default_rng(seed)
    x_train, y_train = _psicov_arrays(root, train, window, rng)
    np.minimum(y_train, PSICOV_TRAIN_CLIP, out=y_train)
    x_test, y_test = _psicov_arrays(root, test, window, rng)
    return RawTask(
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_outputs=1,
        source=f"file:protein/{{deepcov,psicov}}(window={window},seed={seed})",
    )


def _read_list(path: Path) -> list[str]:
    """ORCA's ``load_list``: the first word of each non-empty line."""
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise malformed(path, "the list", "one protein id per line", "no ids")
    return names


def _find(root: Path, pdb: str, kind: str, suffix: str) -> Path:
    """The last of ``protein/{deepcov,psicov,cameo}/<kind>/<pdb><suffix>`` that exists."""
    found = [root / "protein" / s / kind / f"{pdb}{suffix}" for s in PSICOV_SETS]
    found = [p for p in found if p.is_file()]
    if not found:
        dirs = ", ".join(f"protein/{s}/{kind}" for s in PSICOV_SETS)
        raise DataError(
            f"Task 'psicov' needs {pdb}{suffix}, not found in {dirs} under {root}. "
            f"Fix: download {PSICOV_SOURCE} into {root}, or pass --data-dir."
        )
    return found[-1]


def _read_distances(root: Path, pdb: str) -> tuple[int, np.ndarray, Path]:
    """(length, C-beta distance map, file) from ``<pdb>-cb.npy`` = (ly, sequence, map)."""
    path = _find(root, pdb, "distance", "-cb.npy")
    record = read_npy(path)
    if record.dtype != object or record.shape != (3,):
        raise malformed(path, "the record", "an object array (length, sequence, map)",
                        describe(record))
    length, _, cb = record
    if not isinstance(length, (int, np.integer)) or length < 2:
        raise malformed(path, "the length (item 0)", "an integer >= 2", repr(length))
    if not isinstance(cb, np.ndarray) or cb.dtype.kind not in "uif" or cb.shape != (length, length):
        raise malformed(path, "the map (item 2)", f"a numeric array of shape ({length}, {length})",
                        describe(cb))
    return int(length), cb, path


def _psicov_distance_map(length: int, cb: np.ndarray, path: Path) -> np.ndarray:
    """ORCA's ``get_map``: distances >= 1, diagonal from its neighbours, within [1, 500]."""
    y = cb.astype(np.float64)
    cameo = "cameo" in path.parts
    if not cameo and np.isnan(y).any():
        raise malformed(path, "the map (item 2)", "no NaN (only CAMEO maps may have gaps)",
                        f"{int(np.isnan(y).sum())} NaN")
    y[y < 1.0] = 1.0
    y[0, 0] = y[0, 1]
    y[length - 1, length - 1] = y[length - 1, length - 2]
    for q in range(1, length - 1):
        if np.isnan(y[q, q]):
            continue
        left, right = y[q, q - 1], y[q, q + 1]
        if np.isnan(left) and np.isnan(right):
            y[q, q] = 1.0
        elif np.isnan(left) or np.isnan(right):
            y[q, q] = right if np.isnan(left) else left
        else:
            y[q, q] = (left + right) / 2.0
    if np.nanmax(y) > 500.0:
        raise malformed(path, "the map (item 2)", "distances <= 500 A", f"max {np.nanmax(y)}")
    return y


def _psicov_features(root: Path, pdb: str, length: int) -> np.ndarray:
    """ORCA's ``get_feature`` as (57, L, L): per-residue features as row and column copies."""
    path = _find(root, pdb, "features", ".pkl")
    feats = read_pickle(path)
    seq = get_key(feats, "seq", path)
    n = len(seq)
    if n < length or (n != length and "cameo" not in path.parts):
        raise malformed(path, "key 'seq'", f"{length} residues (as the distance map)", f"{n}")
    per_residue = [
        check_array(get_key(feats, "ss", path), path, "key 'ss'", (n,), kinds="uif"),  # (3, L)
        # (L, 22) -> (22, L)
        check_array(get_key(feats, "pssm", path), path, "key 'pssm'", (22,), kinds="uif").T,
        check_array(get_key(feats, "sa", path), path, "key 'sa'", (), kinds="uif")[None],  # (1, L)
        check_array(get_key(feats, "entropy", path), path, "key 'entropy'", (), kinds="uif")[None],
    ]
    expected_rows = (3, 22, 1, 1)
    for key, rows, arr in zip(("ss", "pssm", "sa", "entropy"), expected_rows, per_residue):
        if arr.shape != (rows, n):
            raise malformed(path, f"key {key!r}", f"{rows} x {n} values", f"shape {arr.shape}")
    x = np.zeros((PSICOV_CHANNELS, n, n), dtype=np.float64)
    channel = 0
    for vector in np.concatenate(per_residue):  # 27 features, each (L,)
        x[channel] = vector[None, :]  # row copy: x[p, q] = v[q]
        x[channel + 1] = vector[:, None]  # its transpose
        channel += 2
    for key in PSICOV_PAIR_FEATURES:
        pair = check_array(get_key(feats, key, path), path, f"key {key!r}", (n,), kinds="uif")
        if pair.shape != (n, n):
            raise malformed(path, f"key {key!r}", f"shape ({n}, {n})", f"shape {pair.shape}")
        x[channel] = pair
        channel += 1
    if not ((x > -100.0) & (x < 100.0)).all():  # ORCA asserts this; NaN fails it too
        raise malformed(path, "the features", "values in (-100, 100), no NaN",
                        f"range [{np.nanmin(x)}, {np.nanmax(x)}] with {int(np.isnan(x).sum())} NaN")
    return x


def _check_memory(n: int, window: int) -> None:
    need = n * (PSICOV_CHANNELS + 1) * window * window * 4
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    logger.info("PSICOV: %d proteins at window %d need %.1f GB", n, window, need / 1e9)
    if need > have:
        raise MemoryError(
            f"PSICOV at window {window} needs {need / 1e9:.0f} GB for {n} proteins "
            f"({n} x {PSICOV_CHANNELS + 1} x {window} x {window} float32); this machine has "
            f"{have / 1e9:.0f} GB. Fix: run on a machine with that much memory."
        )


def _psicov_arrays(root: Path, pdbs: list[str], window: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ORCA's ``get_input_output_dist`` for a list of proteins: padded or cropped windows."""
    x = np.zeros((len(pdbs), PSICOV_CHANNELS, window, window), dtype=np.float32)
    y = np.full((len(pdbs), 1, window, window), PSICOV_FILL, dtype=np.float32)
    half = PSICOV_PAD // 2
    for i, pdb in enumerate(pdbs):
        length, cb, path = _read_distances(root, pdb)
        dist = _psicov_distance_map(length, cb, path)  # (ly, ly)
        feats = _psicov_features(root, pdb, length)  # (57, L, L)
        n = feats.shape[1]
        side = n + PSICOV_PAD
        x_pad = np.zeros((PSICOV_CHANNELS, side, side))
        x_pad[:, half:half + n, half:half + n] = feats
        y_pad = np.full((side, side), PSICOV_FILL)
        y_pad[half:half + n, half:half + n] = np.nan  # residues without a distance
        y_pad[half:half + length, half:half + length] = dist
        if side <= window:
            x[i, :, :side, :side] = x_pad
            y[i, 0, :side, :side] = y_pad
        else:  # ORCA crops rows and columns at independent random offsets
            r, c = rng.integers(0, side - window + 1, size=2)
            x[i] = x_pad[:, r:r + window, c:c + window]
            y[i, 0] = y_pad[r:r + window, c:c + window]
    np.nan_to_num(x, copy=False, nan=0.0)
    np.nan_to_num(y, copy=False, nan=0.0)
    return x, y


# -------------------------------------------------------------------------------- Cosmic

COSMIC_LISTS = {"train": "cosmic/train_dirs.npy", "test": "cosmic/test_dirs.npy"}
COSMIC_CROP = (64, 128)  # ORCA's get_fixed_crop: rows and columns 64..191
COSMIC_SHAPE = (1, 128, 128)
COSMIC_SOURCE = (
    f"NAS-Bench-360's deepCR data ({NB360_SITE}): cosmic/{{train,test}}_dirs.npy and the "
    "cosmic/npy_{train,test} trees they list"
)


@_nb360_task(
    "cosmic", modality="2d", output="dense", input_shape=COSMIC_SHAPE, num_outputs=1,
    loss="bce_ignore_mask", metric="one_minus_auroc_pixels",
    data_files=tuple(COSMIC_LISTS.values()),  # the listed cosmic/npy_* files: checked when read
    paper="Zhang & Bloom, deepCR (ApJ 2020)",
)
def load_cosmic(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Hubble images -> cosmic-ray masks (deepCR), each cropped to rows/columns 64..191.

    Each listed file holds (image, cosmic-ray mask[, ignore mask]); a missing ignore mask is
    zeros (ORCA). Targets carry the ignore mask as a second channel.

    Returns:
        float32 (N, 1, 128, 128) images and (N, 2, 128, 128) (mask, ignore) targets.
    """
    require_scale("cosmic", scale)
    root = Path(data_root)
    split = {}
    for name, rel in COSMIC_LISTS.items():
        listing = require_file(root, rel, "cosmic", COSMIC_SOURCE)
        split[name] = _cosmic_arrays(root, read_npy(listing), listing)
    return RawTask(
        x_train=split["train"][0], y_train=split["train"][1],
        x_test=split["test"][0], y_test=split["test"][1],
        num_outputs=1, source="file:cosmic/{train,test}_dirs.npy",
    )


def _cosmic_arrays(root: Path, paths: np.ndarray, listing: Path) -> tuple[np.ndarray, np.ndarray]:
    if paths.ndim != 1 or len(paths) == 0 or not all(isinstance(p, str) for p in paths.tolist()):
        raise malformed(listing, "the array", "a non-empty list of file paths", describe(paths))
    start, side = COSMIC_CROP
    x = np.zeros((len(paths), *COSMIC_SHAPE), dtype=np.float32)
    y = np.zeros((len(paths), 2, side, side), dtype=np.float32)
    for i, rel in enumerate(paths.tolist()):
        path = root / rel[2:]  # ORCA: os.path.join(root, path[2:]), paths start with "./"
        if not path.is_file():
            raise DataError(
                f"Task 'cosmic': {listing} lists {rel!r}, read as {path}, which does not exist. "
                f"Fix: download {COSMIC_SOURCE} into {root}, or pass --data-dir."
            )
        data = read_npy(path)
        if data.ndim != 3 or data.shape[0] not in (2, 3) or min(data.shape[1:]) < start + side:
            raise malformed(path, "the array", f"(2 or 3, H, W) with H, W >= {start + side}",
                            describe(data))
        crop = data[:, start:start + side, start:start + side].astype(np.float32)  # (2|3, 128, 128)
        check_finite(crop, path, "the image (item 0)")
        for c in range(1, crop.shape[0]):
            check_binary(crop[c], path, f"the {'mask' if c == 1 else 'ignore mask'} (item {c})")
        x[i, 0] = crop[0]
        y[i, : crop.shape[0] - 1] = crop[1:]
    return x, y


# ----------------------------------------------------------------------------------- ECG

ECG_FILE = "challenge2017.pkl"
ECG_CLASSES = {"N": 0, "A": 1, "O": 2, "~": 3}  # normal, AF, other rhythm, noisy
ECG_WINDOW = 1000
ECG_STRIDE = 500
# slide_and_cut (datatype 4): strides per class, denser for the rarer classes
ECG_STRIDES = {0: ECG_STRIDE, 1: ECG_STRIDE // 6, 2: ECG_STRIDE // 2, 3: ECG_STRIDE // 20}
ECG_TEST_FRACTION = 0.1  # train_test_split(test_size=0.1, random_state=0) on recordings
ECG_SPLIT_SEED = 0
ECG_SOURCE = f"NAS-Bench-360's PhysioNet/CinC 2017 pickle ({NB360_SITE})"


@_nb360_task(
    "ecg", modality="1d", output="classification", input_shape=(1, ECG_WINDOW),
    num_outputs=len(ECG_CLASSES), loss="cross_entropy", metric="one_minus_macro_f1",
    data_files=(ECG_FILE,),
    paper="Clifford et al., AF classification from a short single lead ECG (2017)",
)
def load_ecg(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Single-lead ECG recordings, standardised per recording, split 90/10 by recording
    (scikit-learn ``train_test_split``, ``random_state=0``, as ORCA), then cut into windows
    of 1,000 with class-dependent strides (500, 83, 250, 25 for N, A, O, ~).

    Returns:
        float32 (N, 1, 1000) windows and int64 labels in [0, 4).
    """
    from sklearn.model_selection import train_test_split

    require_scale("ecg", scale)
    path = require_file(Path(data_root), ECG_FILE, "ecg", ECG_SOURCE)
    content = read_pickle(path)
    records = list(get_key(content, "data", path))
    names = list(get_key(content, "label", path))
    if len(records) != len(names) or not records:
        raise malformed(path, "key 'label'", f"one label per record ({len(records)})", f"{len(names)}")
    labels = np.array([_ecg_label(name, i, path) for i, name in enumerate(names)], dtype=np.int64)
    signals = [_standardise(record, i, path) for i, record in enumerate(records)]
    train, test = train_test_split(np.arange(len(records)), test_size=ECG_TEST_FRACTION,
                                   random_state=ECG_SPLIT_SEED)
    x_train, y_train = _slide_and_cut([signals[i] for i in train], labels[train])
    x_test, y_test = _slide_and_cut([signals[i] for i in test], labels[test])
    return RawTask(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_outputs=len(ECG_CLASSES), source=f"file:{ECG_FILE}")


def _ecg_label(name: Any, index: int, path: Path) -> int:
    if str(name) not in ECG_CLASSES:
        raise malformed(path, f"key 'label' item {index}", f"one of {sorted(ECG_CLASSES)}", repr(name))
    return ECG_CLASSES[str(name)]


def _standardise(record: Any, index: int, path: Path) -> np.ndarray:
    what = f"key 'data' item {index}"
    signal = check_array(np.asarray(record), path, what, (), kinds="uif").astype(np.float64)
    check_finite(signal, path, f"key 'data' item {index}")
    std = signal.std()
    if std == 0:
        raise malformed(path, f"key 'data' item {index}", "a non-constant signal", "a constant one")
    return (signal - signal.mean()) / std


def _slide_and_cut(signals: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORCA's ``slide_and_cut``: windows starting at 0, s, 2s, ... < len - 1000."""
    starts = [range(0, len(sig) - ECG_WINDOW, ECG_STRIDES[int(lab)]) for sig, lab in zip(signals, labels)]
    total = sum(len(s) for s in starts)
    x = np.empty((total, 1, ECG_WINDOW), dtype=np.float32)
    y = np.empty(total, dtype=np.int64)
    at = 0
    for sig, lab, rec_starts in zip(signals, labels, starts):
        if len(rec_starts):
            windows = np.lib.stride_tricks.sliding_window_view(sig, ECG_WINDOW)  # (len - 999, 1000)
            x[at:at + len(rec_starts), 0] = windows[rec_starts.start:rec_starts.stop:rec_starts.step]
            y[at:at + len(rec_starts)] = lab
            at += len(rec_starts)
    return x, y


# ----------------------------------------------------------------------------- Satellite

SATELLITE_FILES = {"train": "satellite_train.npy", "test": "satellite_test.npy"}
SATELLITE_LENGTH = 46
SATELLITE_CLASSES = 24  # stored as 1..24


@_nb360_task(
    "satellite", modality="1d", output="classification", input_shape=(1, SATELLITE_LENGTH),
    num_outputs=SATELLITE_CLASSES, loss="cross_entropy", metric="error_rate",
    data_files=tuple(SATELLITE_FILES.values()),
    paper="Petitjean et al., satellite image time series (2012)",
)
def load_satellite(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Satellite image time series (46 steps), labels 1..24 shifted to 0..23.

    Each file is a ``.npy`` holding a pickled ``{"data": (N, 46), "label": (N,)}``.

    Returns:
        float32 (N, 1, 46) and int64 labels in [0, 24).
    """
    require_scale("satellite", scale)
    root = Path(data_root)
    split = {}
    for name, rel in SATELLITE_FILES.items():
        path = require_file(root, rel, "satellite", f"{NB360_S3}/satellite/{rel}")
        content = read_npy(path)
        content = content[()] if content.dtype == object and content.shape == () else content
        data = check_array(get_key(content, "data", path), path, "key 'data'", (SATELLITE_LENGTH,),
                           kinds="uif")
        labels = class_labels(get_key(content, "label", path), SATELLITE_CLASSES, path, "key 'label'",
                              first=1)
        if len(labels) != len(data):
            raise malformed(path, "key 'label'", f"{len(data)} labels", f"{len(labels)}")
        x = data.astype(np.float32)[:, None]  # (N, 46) -> (N, 1, 46)
        check_finite(x, path, "key 'data'")
        split[name] = (x, labels)
    return RawTask(
        x_train=split["train"][0], y_train=split["train"][1],
        x_test=split["test"][0], y_test=split["test"][1],
        num_outputs=SATELLITE_CLASSES, source="file:satellite_{train,test}.npy",
    )


# ------------------------------------------------------------------------------- DeepSEA

DEEPSEA_FILE = "deepsea_filtered.npz"
DEEPSEA_LENGTH = 1000
DEEPSEA_BASES = 4  # one-hot A, C, G, T
DEEPSEA_LABELS = 36


@_nb360_task(
    "deepsea", modality="1d", output="classification",
    input_shape=(DEEPSEA_BASES, DEEPSEA_LENGTH), num_outputs=DEEPSEA_LABELS,
    loss="bce_pos4", metric="one_minus_auroc_labels", data_files=(DEEPSEA_FILE,),
    paper="Zhou & Troyanskaya, DeepSEA (Nature Methods 2015)",
)
def load_deepsea(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """DeepSEA one-hot sequences (transposed to channels first) and 36 chromatin labels.

    Training = ``x_train`` + ``x_val`` (ORCA without ``valid_split``), test = ``x_test``.

    Returns:
        float32 (N, 4, 1000) and float32 (N, 36) multi-hot labels.
    """
    require_scale("deepsea", scale)
    path = require_file(Path(data_root), DEEPSEA_FILE, "deepsea", f"{NB360_S3}/deepsea/{DEEPSEA_FILE}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read {path}: expected a numpy .npz archive ({err}). "
                        "Fix: download it again.") from err
    with npz:
        x_train = _deepsea_inputs(npz, ("x_train", "x_val"), path)
        y_train = _deepsea_labels(npz, ("y_train", "y_val"), path)
        x_test = _deepsea_inputs(npz, ("x_test",), path)
        y_test = _deepsea_labels(npz, ("y_test",), path)
    for x, y, key in ((x_train, y_train, "y_train"), (x_test, y_test, "y_test")):
        if len(x) != len(y):
            raise malformed(path, f"key {key!r}", f"{len(x)} label rows", f"{len(y)}")
    return RawTask(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_outputs=DEEPSEA_LABELS, source=f"file:{DEEPSEA_FILE}")


def _npz_get(npz: Any, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise malformed(path, f"key {key!r}", "present", f"only keys {sorted(npz.files)}")
    try:
        return npz[key]
    except ValueError as err:  # an object array needs pickle: refused
        raise malformed(path, f"key {key!r}", "a plain numeric array", str(err)) from err


def _deepsea_inputs(npz: Any, keys: Iterable[str], path: Path) -> np.ndarray:
    """Concatenate (N, 1000, 4) one-hot arrays into one float32 (N, 4, 1000) array."""
    parts = [
        check_array(_npz_get(npz, k, path), path, f"key {k!r}", (DEEPSEA_LENGTH, DEEPSEA_BASES),
                    kinds="uifb")
        for k in keys
    ]
    out = np.empty((sum(len(p) for p in parts), DEEPSEA_BASES, DEEPSEA_LENGTH), dtype=np.float32)
    at = 0
    for key, part in zip(keys, parts):
        out[at:at + len(part)] = part.transpose(0, 2, 1)  # (n, 1000, 4) -> (n, 4, 1000)
        check_finite(out[at:at + len(part)], path, f"key {key!r}")
        at += len(part)
    return out


def _deepsea_labels(npz: Any, keys: Iterable[str], path: Path) -> np.ndarray:
    parts = []
    for key in keys:
        labels = check_array(_npz_get(npz, key, path), path, f"key {key!r}", (DEEPSEA_LABELS,),
                             kinds="uifb")
        check_binary(labels, path, f"key {key!r}")
        parts.append(labels.astype(np.float32))
    return np.concatenate(parts)
