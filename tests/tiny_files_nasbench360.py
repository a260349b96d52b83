"""Tiny NAS-Bench-360 data files in the exact published formats (no tests here).

``WRITERS[task](data_dir)`` writes task ``task``'s files into ``data_dir`` the way
``trainables.tasks.nasbench360`` expects the published ones: same names, folders, keys,
containers (pickles, object ``.npy``, ``.npz``, ``.mat``, wav + csv manifests) and per-sample
shapes, with a handful of samples (each task < 2 MB). ``SIZES[task]`` is the number of
(train, test) samples the loader returns from them. Values are seeded random numbers.
"""
from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIZES = {
    "cifar100": (12, 6),
    "ninapro": (12 + 4, 6),  # train + val files
    "fsd50k": (8, 7),  # one chunk per training clip; every test chunk
    "darcyflow": (12, 6),
    "psicov": (12, 6),
    "cosmic": (8, 4),
    "ecg": (None, None),  # windows: depends on record lengths, see write_ecg
    "satellite": (12, 6),
    "deepsea": (8 + 4, 6),  # train + val
}


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def write_cifar100(root: Path) -> None:
    """``cifar-100-python/{train,test}``: protocol-2 pickles with bytes keys (as Python 2 wrote)."""
    rng = _rng("cifar100")
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("test", 6)):
        batch = {
            b"batch_label": f"{split} batch".encode(),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
            b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
            b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))


def write_ninapro(root: Path) -> None:
    """``ninaPro/ninapro_{train,val,test}.npy`` (N, 52, 16) and ``label_*.npy`` (N,)."""
    rng = _rng("ninapro")
    folder = root / "ninaPro"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        np.save(folder / f"ninapro_{split}.npy", rng.normal(size=(n, 52, 16)).astype(np.float32))
        np.save(folder / f"label_{split}.npy", rng.integers(0, 18, n).astype(np.int64))


FSD_NAMES = [f"Class_{k:03d}" for k in range(200)]


def _write_wav(path: Path, samples: np.ndarray) -> None:
    from scipy.io import wavfile

    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, 22050, (np.clip(samples, -1, 1) * 32767).astype(np.int16))


def write_fsd50k(root: Path) -> None:
    """``chunks/{tr,val,eval}.csv`` + ``chunks/lbl_map.json`` + 1 s, 22,050 Hz int16 wav chunks.

    Manifest paths start with ``data/`` as the published ones (ORCA drops 4 characters).
    8 training clips of 2 chunks, 3 test clips of 3, 2 and 2 chunks (one chunk 0.5 s long).
    """
    rng = _rng("fsd50k")
    chunks = root / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    (chunks / "lbl_map.json").write_text(json.dumps({n: k for k, n in enumerate(FSD_NAMES)}))
    t = np.arange(22050) / 22050.0
    plan = {"tr": [(f"{100 + c}", 2) for c in range(8)], "val": [("300", 1)],
            "eval": [("200", 3), ("201", 2), ("202", 2)]}
    for manifest, clips in plan.items():
        rows = []
        for ext, n_chunks in clips:
            labels = ",".join(FSD_NAMES[k] for k in sorted(rng.choice(200, 2, replace=False)))
            for j in range(n_chunks):
                rel = f"chunks/{manifest}_audio/{ext}_{j}.wav"
                length = 11025 if (ext, j) == ("201", 1) else 22050
                freq = rng.uniform(200, 4000)
                wave = 0.5 * np.sin(2 * np.pi * freq * t[:length]) + 0.05 * rng.normal(size=length)
                _write_wav(root / rel, wave)
                rows.append({"files": f"data/{rel}", "labels": labels, "ext": ext})
        with open(chunks / f"{manifest}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["files", "labels", "ext"])
            writer.writeheader()
            writer.writerows(rows)


def darcy_fields(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Piecewise-constant (N, 421, 421) ``coeff`` (3 or 12, as the FNO data) and ``sol``."""
    blocks = rng.choice([3.0, 12.0], size=(n, 8, 8))
    coeff = np.kron(blocks, np.ones((53, 53)))[:, :421, :421]
    sol = np.kron(rng.uniform(0.0, 0.01, size=(n, 8, 8)), np.ones((53, 53)))[:, :421, :421]
    return {"coeff": coeff.astype(np.float32), "sol": sol.astype(np.float32)}


def write_darcyflow(root: Path) -> None:
    """``piececonst_r421_N1024_smooth{1,2}.mat``: MATLAB v5 (compressed), fields coeff, sol."""
    import scipy.io

    rng = _rng("darcyflow")
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("piececonst_r421_N1024_smooth1.mat", 12), ("piececonst_r421_N1024_smooth2.mat", 6)):
        scipy.io.savemat(root / name, darcy_fields(n, rng), do_compression=True)


PSICOV_LENGTH = 30  # >= 25 so that pairs 24 apart exist (MAE8); window = 30 + 10 = 40


def psicov_protein(length: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """A feature dict (PDNet ``.pkl`` keys) and a C-beta distance map of a compact chain."""
    steps = rng.normal(size=(length, 3))
    coords = np.cumsum(3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0)
    coords = np.mod(coords, 9.0)  # folded into a 9 A box: many long-range contacts < 8 A
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=2).astype(np.float32)
    feats = {
        "seq": "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length)),
        "ss": rng.uniform(size=(3, length)).astype(np.float32),
        "pssm": rng.uniform(size=(length, 22)).astype(np.float32),
        "sa": rng.uniform(size=length).astype(np.float32),
        "entropy": rng.uniform(size=length).astype(np.float32),
        "ccmpred": rng.uniform(-1, 1, (length, length)).astype(np.float32),
        "freecon": rng.uniform(-1, 1, (length, length)).astype(np.float32),
        "potential": rng.uniform(-1, 1, (length, length)).astype(np.float32),
    }
    return feats, dist


def save_distance_record(path: Path, length: int, seq: str, dist: np.ndarray) -> None:
    """``<pdb>-cb.npy``: an object array (length, sequence, map), as PDNet saves it."""
    record = np.empty(3, dtype=object)
    record[0], record[1], record[2] = length, seq, dist
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, record, allow_pickle=True)


def write_psicov(root: Path) -> None:
    """``protein/{deepcov,psicov}.lst`` and per protein ``features/<id>.pkl`` +
    ``distance/<id>-cb.npy`` (12 DeepCov training, 6 PSICOV test proteins of 30 residues)."""
    rng = _rng("psicov")
    for subset, n in (("deepcov", 12), ("psicov", 6)):
        ids = [f"{subset[:2]}{i:02d}A" for i in range(n)]
        base = root / "protein" / subset
        (base / "features").mkdir(parents=True, exist_ok=True)
        for pdb in ids:
            feats, dist = psicov_protein(PSICOV_LENGTH, rng)
            (base / "features" / f"{pdb}.pkl").write_bytes(pickle.dumps(feats, protocol=4))
            save_distance_record(base / "distance" / f"{pdb}-cb.npy", PSICOV_LENGTH, feats["seq"], dist)
        (root / "protein" / f"{subset}.lst").write_text("".join(f"{pdb} {PSICOV_LENGTH}\n" for pdb in ids))


def cosmic_sample(channels: int, rng: np.random.Generator, side: int = 192) -> np.ndarray:
    """(channels, side, side) uint8: image, cosmic-ray mask[, ignore mask]."""
    image = rng.integers(0, 200, (side, side))
    mask = (rng.uniform(size=(side, side)) < 0.1).astype(np.int64)
    image[mask == 1] = 255
    planes = [image, mask]
    if channels == 3:
        planes.append((rng.uniform(size=(side, side)) < 0.05).astype(np.int64))
    return np.stack(planes).astype(np.uint8)


def write_cosmic(root: Path) -> None:
    """``cosmic/{train,test}_dirs.npy`` (string arrays of "./cosmic/npy_.../x.npy" paths) and
    the listed (3 or 2, 192, 192) arrays: 8 training with ignore masks, 4 test without."""
    rng = _rng("cosmic")
    for split, n, channels in (("train", 8, 3), ("test", 4, 2)):
        rels = []
        for i in range(n):
            rel = f"cosmic/npy_{split}/f435w/10760_2/{i % 2}/{i + 1}_img.npy"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / rel, cosmic_sample(channels, rng))
            rels.append(f"./{rel}")
        np.save(root / "cosmic" / f"{split}_dirs.npy", np.array(rels))


ECG_RECORDS = 20


def write_ecg(root: Path) -> None:
    """``challenge2017.pkl``: {"data": list of 1-D records, "label": list of "N"/"A"/"O"/"~"}."""
    rng = _rng("ecg")
    labels = [["N", "A", "O", "~"][i % 4] for i in range(ECG_RECORDS)]
    data = [np.sin(np.arange(n) / 20.0) + 0.1 * rng.normal(size=n)
            for n in rng.integers(1200, 1700, ECG_RECORDS)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "challenge2017.pkl").write_bytes(pickle.dumps({"data": data, "label": labels}, protocol=4))


def write_satellite(root: Path) -> None:
    """``satellite_{train,test}.npy``: 0-d object arrays of {"data": (N, 46), "label": 1..24}."""
    rng = _rng("satellite")
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("test", 6)):
        content = {"data": rng.normal(size=(n, 46)), "label": rng.integers(1, 25, n)}
        np.save(root / f"satellite_{split}.npy", content, allow_pickle=True)


def write_deepsea(root: Path) -> None:
    """``deepsea_filtered.npz``: one-hot x_* (N, 1000, 4) and 0/1 y_* (N, 36)."""
    rng = _rng("deepsea")
    arrays = {}
    for split, n in (("train", 8), ("val", 4), ("test", 6)):
        arrays[f"x_{split}"] = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n, 1000))]
        arrays[f"y_{split}"] = (rng.uniform(size=(n, 36)) < 0.3).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "deepsea_filtered.npz", **arrays)


WRITERS: dict[str, Callable[[Path], None]] = {
    "cifar100": write_cifar100,
    "ninapro": write_ninapro,
    "fsd50k": write_fsd50k,
    "darcyflow": write_darcyflow,
    "psicov": write_psicov,
    "cosmic": write_cosmic,
    "ecg": write_ecg,
    "satellite": write_satellite,
    "deepsea": write_deepsea,
}
