"""MoNA's analyses run over a sweep's machinery: the modality knowledge discrepancy of a task
(Alg. 2) and the source-knowledge distortion of an experiment's trials (§2.2, Fig. 3).

The CLI is ``tuner.analyze`` (it imports this module only after parsing its flags, so
``--help`` is fast); the probes themselves are ``trainables.analysis``.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402

from trainables.analysis.discrepancy import (
    NO_CLASSIFIER,
    NOT_CLASSIFICATION,
    Discrepancy,
    check_classifier,
    modality_discrepancy,
    source_logits,
)
from trainables.analysis.distortion import (
    build_reference,
    encoder_from_state,
    load_probe_data,
    probe_encoder,
)
from trainables.base import CHECKPOINT_FILE, read_checkpoint
from trainables.models.backbones import create_source_model
from trainables.paths import data_root
from trainables.registry import get_backbone, get_method, get_task
from trainables.tasks.data import TaskData, load_task
from tuner import store
from tuner.analyze import DEFAULT_EXPERIMENTS, PROBE_MAX_SAMPLES, SPLITS
from tuner.spec import DATA_SEED, VAL_FRACTION, resolve_environment

log = logging.getLogger(__name__)

#: Fields of a trial's config that fix the reference model and the probe data: every trial of
#: one distortion analysis must agree on them.
SHARED_FIELDS = ("task", "backbone", "scale", "data_root", "data_seed", "weights_path", "encoder_init")
CHECKPOINT_PREFIX = "checkpoint_"


# ---------------------------------------------------------------------------------------------
# discrepancy


@dataclass(frozen=True)
class DiscrepancyRun:
    task: str
    backbone: str
    scale: str
    split: str
    samples: int
    num_classes: int
    source_classes: int
    logits_seconds: float
    result: Discrepancy


def target_split(data: TaskData, split: str, max_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The target inputs and labels Alg. 2 runs on.

    ``train``: the published training split (the sweep's train + validation parts);
    ``test``: the test split. ``max_samples`` > 0 keeps a seeded subset.
    """
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}, got {split!r}")
    if split == "train":
        x, y = np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val])
    else:
        x, y = data.x_test, data.y_test
    if 0 < max_samples < len(x):
        keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_samples])
        x, y = x[keep], y[keep]
    return x, y


def run_discrepancy(task: str, backbone: str | None = None, scale: str = "auto", data_dir: str | None = None,
                    weights: str | None = None, experiments: int = DEFAULT_EXPERIMENTS, seed: int = 0,
                    split: str = "train", max_samples: int = 0, device: str = "cpu") -> DiscrepancyRun:
    """Alg. 2 for ``task`` against ``backbone``'s complete pretrained model.

    Raises:
        KeyError: unknown task or backbone.
        ValueError: not a single-label classification task, a backbone without a classifier,
            or a bad option.
    """
    spec = get_task(task)
    if spec.output != "classification":
        raise ValueError(NOT_CLASSIFICATION.format(task=task, output=spec.output))
    # The sweep's own resolution of scale, backbone and data root.
    env = resolve_environment(task, scale, backbone, data_dir, weights=weights)
    source_spec = get_backbone(env.backbone)
    if source_spec.library != "timm":
        raise ValueError(NO_CLASSIFIER.format(backbone=env.backbone))
    data = load_task(task, env.data_root, env.scale, DATA_SEED, VAL_FRACTION)
    if data.y_train.ndim != 1:
        raise ValueError(NOT_CLASSIFICATION.format(task=task, output=f"multi-label ({data.y_train.shape[1]} labels)"))
    x, y = target_split(data, split, max_samples, seed)
    model = create_source_model(source_spec, "pretrained", weights)
    source_classes = check_classifier(model, env.backbone)
    log.info("source logits of %s on %d %s samples (%s, resized to the model's input size)",
             env.backbone, len(x), split, device)
    start = time.perf_counter()
    logits = source_logits(model, x, device)
    logits_seconds = time.perf_counter() - start
    result = modality_discrepancy(logits, y, data.num_outputs, experiments, seed)
    return DiscrepancyRun(task, env.backbone, env.scale, split, len(y), data.num_outputs,
                          source_classes, logits_seconds, result)


def discrepancy_curve(run: DiscrepancyRun) -> pd.DataFrame:
    """Per experiment: D_exp (Eq. 11) and the running minimum (Alg. 2, line 10)."""
    r = run.result
    return pd.DataFrame({"experiment": np.arange(1, r.experiments + 1), "discrepancy": r.values,
                         "running_min": r.running_min})


def discrepancy_figure(run: DiscrepancyRun):
    """The running minimum of D against the number of experiments (log x axis)."""
    r = run.result
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(np.arange(1, r.experiments + 1), r.running_min, color="tab:blue")
    ax.axhline(r.value, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("experiments I")
    ax.set_ylabel("min disagreement (Eq. 11)")
    ax.set_title(f"{run.task} vs {run.backbone}: D = {r.value:.4f} (I = {r.experiments:,}, K = {run.num_classes}, "
                 f"n = {run.samples})", fontsize=8)
    fig.tight_layout()
    return fig


def write_discrepancy(run: DiscrepancyRun, prefix: str) -> tuple[Path, Path]:
    """``<prefix>.csv`` (the curve) and ``<prefix>.png`` (its figure)."""
    csv, png = Path(f"{prefix}.csv"), Path(f"{prefix}.png")
    csv.parent.mkdir(parents=True, exist_ok=True)
    discrepancy_curve(run).to_csv(csv, index=False)
    fig = discrepancy_figure(run)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return csv, png


def discrepancy_summary(run: DiscrepancyRun) -> str:
    r = run.result
    return (f"D({run.backbone} -> {run.task}) = {r.value:.4f}  (I = {r.experiments:,} experiments, K = "
            f"{run.num_classes} of {run.source_classes} source classes, n = {run.samples} {run.split} samples, "
            f"{run.scale} scale)\n"
            f"first reached at experiment {r.best + 1}: source classes {r.best_subset.tolist()}, "
            f"target permutation {r.best_perm.tolist()}\n"
            f"time: source logits {run.logits_seconds:.1f} s, {r.experiments:,} experiments {r.seconds:.1f} s")


# ---------------------------------------------------------------------------------------------
# distortion


def trial_config(row: pd.Series) -> dict:
    """A trial's config from its ``config/<key>`` columns (keys it lacks are null there)."""
    config = {}
    for column, value in row.items():
        if not str(column).startswith(store.CONFIG_PREFIX):
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = value.item() if isinstance(value, np.generic) else value
        config[str(column)[len(store.CONFIG_PREFIX):]] = value
    return config


def parse_trial_config(row: pd.Series):
    """The trial's typed config (its method's ``TrialConfig`` subclass).

    Raises:
        ValueError: the row has no method, or its config does not parse (naming the trial).
    """
    method = row.get("method")
    if not isinstance(method, str):
        raise ValueError(f"trial {row['trial_id']}: the trials row names no method")
    try:
        # trials stored before the stage-1 cache existed carry no stage1_cache key: off
        return get_method(method).trainable.config_class.from_config({"stage1_cache": "", **trial_config(row)})
    except ValueError as e:
        raise ValueError(f"trial {row['trial_id']}: cannot rebuild its config from the store: {e}") from e


def shared_config(configs: list) -> dict:
    """The values of :data:`SHARED_FIELDS`, which must agree across the trials.

    Raises:
        ValueError: naming a field whose values differ.
    """
    shared = {}
    for name in SHARED_FIELDS:
        values = sorted({str(getattr(c, name)) for c in configs})
        if len(values) != 1:
            raise ValueError(f"distortion: the trials differ in {name} ({', '.join(values)}); analyse "
                             "experiments with one task, backbone and data set each")
        shared[name] = getattr(configs[0], name)
    return shared


def checkpoint_file(storage: str, experiment: str, trial_id: str) -> tuple[pafs.FileSystem, str]:
    """The ``state.pt`` of a trial's last checkpoint in Ray's experiment directory.

    Raises:
        ValueError: no trial directory or no checkpoint for ``trial_id``.
    """
    fs, root = store.filesystem(store.experiment_dir(storage, experiment))
    entries = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    trial_dirs = [e.path for e in entries if e.type == pafs.FileType.Directory and e.base_name.endswith(f"_{trial_id}")]
    if len(trial_dirs) != 1:
        raise ValueError(f"trial {trial_id}: expected one directory '*_{trial_id}' in {root}, found "
                         f"{len(trial_dirs)}. Point --storage at the sweep's storage path.")
    checkpoints = sorted(
        (e for e in fs.get_file_info(pafs.FileSelector(trial_dirs[0]))
         if e.type == pafs.FileType.Directory and e.base_name.startswith(CHECKPOINT_PREFIX)),
        key=lambda e: e.base_name)
    for entry in reversed(checkpoints):
        path = f"{entry.path}/{CHECKPOINT_FILE}"
        if fs.get_file_info(path).type == pafs.FileType.File:
            return fs, path
    raise ValueError(f"trial {trial_id}: no {CHECKPOINT_PREFIX}*/{CHECKPOINT_FILE} in {trial_dirs[0]}")


def read_model_state(fs: pafs.FileSystem, path: str) -> dict:
    """The ``"model"`` state dict of a checkpoint, via ``read_checkpoint`` (copied locally first
    when the storage is remote)."""
    if isinstance(fs, pafs.LocalFileSystem):
        return read_checkpoint(path)["model"]
    with tempfile.TemporaryDirectory() as tmp:
        local = str(Path(tmp) / Path(path).name)
        pafs.copy_files(path, local, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        return read_checkpoint(local)["model"]


def run_distortion(storage: str, experiment: str, data_dir: str | None = None, max_samples: int = PROBE_MAX_SAMPLES,
                   seed: int = 0, device: str = "cpu") -> pd.DataFrame:
    """Probe every completed trial's final encoder and the reference; write the rows to the store.

    Returns:
        The rows written (``store.DISTORTION_COLUMNS`` without ``written_at`` and ``schema_version``).

    Raises:
        ValueError: no completed trial, trials that disagree on task/backbone/data, or a
            trial whose config or checkpoint cannot be read.
    """
    store.require_experiments(storage, [experiment])
    trials = store.read_trials(storage, experiment)
    done = trials[trials["status"] == "completed"]
    if done.empty:
        counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
        raise ValueError(f"distortion: experiment {experiment!r} in {storage} has no completed trial "
                         f"(statuses: {counts or 'no trials'})")
    configs = [parse_trial_config(row) for _, row in done.iterrows()]
    shared = shared_config(configs)
    cfg = configs[0]
    root = str(data_root(data_dir)) if data_dir else cfg.data_root
    task = get_task(cfg.task)
    spec = get_backbone(cfg.backbone)
    data = load_task(cfg.task, root, cfg.scale, cfg.data_seed, cfg.val_fraction)
    weights = cfg.weights_path or None
    built = build_reference(spec, cfg.encoder_init, weights, data.input_shape, data.num_outputs, task.output,
                            cfg.target_seq_len or None, seed)
    probe = load_probe_data(spec, root, data.input_shape, getattr(built.model.embedder, "num_tokens", None),
                            weights, max_samples, seed)
    reference = probe_encoder(built.model.encoder, built.source_embedder, probe, device, seed)
    rows = []
    for (_, row), trial_cfg in zip(done.iterrows(), configs):
        fs, path = checkpoint_file(storage, experiment, row["trial_id"])
        encoder = encoder_from_state(built.model.encoder, read_model_state(fs, path))
        error = probe_encoder(encoder, built.source_embedder, probe, device, seed)
        rows.append({
            "experiment": experiment, "trial_id": row["trial_id"], "method": row["method"],
            "task": shared["task"], "backbone": shared["backbone"], "probe_error": error,
            "pretrained_probe_error": reference, "distortion": error - reference, "surrogate": probe.source,
            "probe_train": len(probe.train), "probe_test": len(probe.test), "probe_seed": seed,
            "checkpoint": path, "test_metric": float(row["test_metric"]), "seed": trial_cfg.seed,
        })
        log.info("trial %s: probe error %.2f%% (pretrained %.2f%%)", row["trial_id"], error, reference)
    store.append_rows(storage, experiment, store.DISTORTION, rows)
    return pd.DataFrame(rows)
