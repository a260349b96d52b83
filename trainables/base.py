"""The shared two-stage Trainable: every method is a stage plan on this base.

One ``step()`` is one epoch of the current stage. Stage 1 (methods that have one: Emb, ORCA,
MoNA) trains a subset of the model with the method's objective; stage 2 fine-tunes with the
task loss (Eq. 1 of the MoNA paper). Every result carries the same keys, the validation
metric included in stage 1, so that ASHA, Optuna and the Parquet store see one schema.

ASHA's clock is ``stage2_epoch`` (0 throughout stage 1), so trials are compared at equal
stage-2 progress whatever their searched stage-1 length, and never pruned during stage 1.

Model selection: the validation split (carved from the training data) picks the stage-2
epoch whose weights are scored on the test split, once, when the plan finishes.
Checkpoints hold the model, optimizer, LR schedule, stage position, best weights and RNG
states, so a restored trial continues bit-for-bit (on the same device and thread count).

Stage-1 cache (``trainables.stage1_cache``, config ``stage1_cache``: a directory, "" = off): when
stage 1 starts, a trial looks up the stage 1 of identical inputs; on a hit it loads the stored
model tensors and end-of-stage-1 RNG states and replays the stored stage-1 rows (one per
``step()``, no training), so history, ASHA's clock and the result schema are as if computed, and
stage 2 is bit-identical. A computed stage 1 is published when it ends. Every result reports
``stage1_reused`` and ``stage1_saved_s`` (stored stage-1 time minus the replay's, so far).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, fields
from typing import Iterator

import numpy as np
import torch
from ray import tune

from trainables import stage1_cache
from trainables.errors import CheckpointError
from trainables.losses.task import TASK_LOSSES
from trainables.metrics import get_metric
from trainables.build import build_trial_model, load_source_data
from trainables.registry import get_backbone, get_task
from trainables.tasks.data import denormalize, load_task

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
OPTIMIZERS = ("adamw", "adam", "sgd")
EMBEDDER_INITS = ("source", "random")  # copy of the pretrained stem (ORCA, MoNA A.2) or random
ENCODER_INITS = ("pretrained", "random")
# TrialConfig fields that every stage 1 reads (methods add theirs in ``stage1_keys``); with the
# model, source stem and source surrogate, keyed by content, they make the stage-1 cache key.
# Not in it: data_root and weights_path (their content is keyed, not their path: nodes may
# mount them elsewhere), stage1_cache, and the stage-2 keys.
BASE_STAGE1_KEYS = ("task", "scale", "backbone", "encoder_init", "embedder_init", "target_seq_len", "data_seed",
                    "val_fraction", "max_train_samples", "seed", "batch_size", "num_threads")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial reads. Built from the flat Tune config; no key is optional.

    The sweep supplies the constants (``SweepSpec.trial_constants``) and the search space
    the sampled values; a missing or unknown key is an error, never a silent default.
    """

    task: str
    backbone: str
    scale: str  # "mini" | "paper", resolved by the driver
    data_root: str
    data_seed: int
    val_fraction: float
    max_train_samples: int  # 0 = all training samples
    seed: int
    encoder_init: str  # "pretrained" | "random"
    embedder_init: str  # "source" | "random"
    freeze_encoder: bool
    weights_path: str  # "" = the backbone's default location
    target_seq_len: int  # the task's 1D token limit at paper scale (ORCA's; ECG 64), 0 = the backbone's
    optimizer: str
    batch_size: int
    grad_accum: int  # stage-2 batches per optimizer step (Tables 9 and 11, "Grad. Accum.")
    stage2_lr: float
    stage2_weight_decay: float
    stage2_epochs: int
    num_threads: int
    stage1_cache: str  # directory of the stage-1 cache (trainables.stage1_cache), "" = off

    @classmethod
    def from_config(cls, config: dict) -> "TrialConfig":
        """Parse a Tune config, refusing missing and unknown keys.

        Raises:
            ValueError: naming the missing or unknown keys.
        """
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - config.keys()), sorted(config.keys() - names)
        if missing or unknown:
            raise ValueError(
                f"{cls.__name__}: missing keys {missing}, unknown keys {unknown}. "
                f"Expected exactly: {', '.join(sorted(names))}"
            )
        cfg = cls(**config)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        choices = [("optimizer", OPTIMIZERS), ("embedder_init", EMBEDDER_INITS), ("encoder_init", ENCODER_INITS)]
        for name, valid in choices:
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}")
        for name in ("batch_size", "grad_accum", "stage2_epochs", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stage1_cache and ("://" in self.stage1_cache or not os.path.isabs(self.stage1_cache)):
            raise ValueError(f"stage1_cache must be an absolute local or mounted directory or \"\" (off), got "
                             f"{self.stage1_cache!r}")


@dataclass(frozen=True)
class Stage:
    index: int  # 1 or 2
    name: str
    epochs: int


def select_device() -> torch.device:
    """CUDA when Ray assigned this trial a GPU, else CPU.

    Raises:
        RuntimeError: when Ray assigned GPU ids but torch sees no CUDA device.
    """
    import ray

    gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"Ray gave this trial GPU ids {gpu_ids} (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}) but torch {torch.__version__} finds no "
            "CUDA device: install a CUDA build of torch on this node or run with --gpus-per-trial 0."
        )
    return torch.device("cuda")


def read_checkpoint(path: str) -> dict:
    """A trial checkpoint's state, read with ``weights_only=True`` (tensors and plain data only,
    so nothing in the file can run code); tensors stay on the CPU.

    Raises:
        CheckpointError: the file is missing, corrupt or holds anything else (naming the file).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, OSError, ...
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"cannot restore trial checkpoint {path}: {first_line}. The file is corrupt or not a "
            "crossmodal-tune checkpoint; delete that checkpoint directory to resume from an earlier "
            "one, or rerun the trial."
        ) from e


def ray_placement() -> dict[str, str]:
    """Where Ray placed this trial: its node id and GPU ids ("" outside Ray / without GPUs)."""
    import ray

    if not ray.is_initialized():
        return {"node_id": "", "gpu_ids": ""}
    return {"node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":  # L2 penalty through the gradient, as torch.optim.Adam does
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


class TwoStageTrainable(tune.Trainable):
    """Base of every method. Subclasses with a stage 1 set ``stage1_name``, declare the config
    keys their stage 1 reads beyond ``BASE_STAGE1_KEYS`` in ``stage1_keys`` (the stage-1 cache
    key) and implement ``stage1_optimizer`` and ``stage1_epoch``; they may report
    ``loss_part_keys``."""

    config_class: type[TrialConfig] = TrialConfig
    stage1_name: str | None = None
    stage1_keys: tuple[str, ...] = ()
    loss_part_keys: tuple[str, ...] = ()

    # ---- Tune API -------------------------------------------------------------------------
    def setup(self, config: dict) -> None:
        # Ray logs every persisted checkpoint at INFO in the trial's process, which the driver's
        # console shows as one line per epoch; the store records checkpoints, warnings still pass.
        logging.getLogger("ray.train").setLevel(logging.WARNING)
        self._build(config)

    def reset_config(self, new_config: dict) -> bool:
        self._build(new_config)
        return True

    def step(self) -> dict:
        stage = self.plan[self.stage_idx]
        start = time.perf_counter()
        if stage.index == 1 and self.stage_epoch == 0:
            self._look_up_stage1()
        result = self._replay_stage1() if stage.index == 1 and self.s1.reused else self._run_epoch(stage)
        if stage.index == 1:
            self._record_stage1(result, time.perf_counter() - start)
        self.samples_total += result["samples"]
        return {**result, "samples_total": self.samples_total,
                "stage1_reused": self.s1.reused, "stage1_saved_s": self.s1.saved_s}

    def _run_epoch(self, stage: Stage) -> dict:
        """Train one epoch of ``stage`` and evaluate: the step's result."""
        start = time.perf_counter()
        parts = self.stage1_epoch() if stage.index == 1 else self.train_epoch()
        elapsed = time.perf_counter() - start
        self.stage_epoch += 1
        self.epoch += 1
        diverged = not math.isfinite(parts["train_loss"])
        val = float("nan") if diverged else self.evaluate("val")
        if stage.index == 2 and not diverged and self._improves(val):
            self.best_val = val
            # a CPU copy: GPU memory holds one model, not two
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        stage_done = self.stage_epoch >= stage.epochs
        finished = stage_done and self.stage_idx == len(self.plan) - 1 and not diverged
        test = self._final_test() if finished else float("nan")
        result = {
            "stage": stage.index, "stage_name": stage.name, "epoch": self.epoch,
            "stage_epoch": self.stage_epoch, "stage2_epoch": self.stage_epoch if stage.index == 2 else 0,
            "train_loss": float(parts["train_loss"]),
            "val_metric": val, "best_val_metric": self.best_val, "test_metric": test,
            "lr": self.optimizer.param_groups[0]["lr"], "samples": parts["samples"],
            "samples_per_s": parts["samples"] / max(elapsed, 1e-9),
            "diverged": diverged, "finished": finished, **self.placement,
        }
        result.update({k: float(parts.get(k, float("nan"))) for k in self.loss_part_keys})
        if diverged:
            log.warning("trial %s diverged in stage %d epoch %d (loss %s)", self.trial_id, stage.index,
                        self.stage_epoch, parts["train_loss"])
        if stage_done and not finished and not diverged:
            self._next_stage()
        if diverged or finished:
            result["done"] = True
        return result

    def _next_stage(self) -> None:
        self.stage_idx += 1
        self.stage_epoch = 0
        self._enter_stage()

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stage_idx": self.stage_idx, "stage_epoch": self.stage_epoch, "epoch": self.epoch,
            "best_val": self.best_val, "best_state": self.best_state,
            "torch_rng": torch.get_rng_state(), "data_rng": self.generator.get_state(),
            "stage1": self.s1.to_state(), "samples_total": self.samples_total,
        }
        torch.save(state, os.path.join(checkpoint_dir, CHECKPOINT_FILE))
        return None

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        state = read_checkpoint(os.path.join(checkpoint_dir, CHECKPOINT_FILE))
        self.model.load_state_dict(state["model"])
        self.stage_idx, self.stage_epoch, self.epoch = state["stage_idx"], state["stage_epoch"], state["epoch"]
        self._enter_stage()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_val, self.best_state = state["best_val"], state["best_state"]
        torch.set_rng_state(state["torch_rng"].cpu())
        self.generator.set_state(state["data_rng"].cpu())
        self.s1 = stage1_cache.Stage1Record.from_state(state["stage1"])
        self.samples_total = state["samples_total"]

    # ---- building ---------------------------------------------------------------------------
    def _build(self, config: dict) -> None:
        cfg = self.cfg = self.config_class.from_config(config)
        torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.placement = ray_placement()
        self.device = self.trial_device()
        self.task = get_task(cfg.task)
        self.metric = get_metric(self.task.metric)
        self.loss_fn = TASK_LOSSES[self.task.loss]
        self.data = load_task(cfg.task, cfg.data_root, cfg.scale, cfg.data_seed, cfg.val_fraction)
        self.train_x, self.train_y = self._training_subset()
        built = build_trial_model(get_backbone(cfg.backbone), cfg.encoder_init, cfg.weights_path or None,
                                  self.data.input_shape, self.data.num_outputs, self.task.output,
                                  cfg.embedder_init, cfg.target_seq_len or None)
        self.model = built.model.to(self.device)
        self.source_embedder = built.source_embedder.to(self.device)
        self.plan = self.stage_plan()
        self.stage_idx, self.stage_epoch, self.epoch = 0, 0, 0
        self.best_val, self.best_state = float("nan"), None
        self.s1, self.source_digest = stage1_cache.Stage1Record(), ""
        self.samples_total = 0  # training samples this trial processed (a reused stage 1 adds none)
        self.setup_method()
        self._enter_stage()

    def trial_device(self) -> torch.device:
        """The device this trial trains on (``select_device``: CUDA iff Ray gave it a GPU)."""
        return select_device()

    def _training_subset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training arrays as tensors, optionally a seeded subset (CPU budgets)."""
        x, y = self.data.x_train, self.data.y_train
        n = self.cfg.max_train_samples
        if 0 < n < len(x):
            keep = np.random.default_rng(self.cfg.data_seed).permutation(len(x))[:n]
            x, y = x[keep], y[keep]
        return torch.as_tensor(x), torch.as_tensor(y)

    def stage_plan(self) -> list[Stage]:
        plan = [Stage(2, "finetune", self.cfg.stage2_epochs)]
        if self.stage1_name is not None and self.cfg.stage1_epochs > 0:
            plan.insert(0, Stage(1, self.stage1_name, self.cfg.stage1_epochs))
        return plan

    def setup_method(self) -> None:
        """Hook for method state built once per trial (e.g. source surrogate data)."""

    def _enter_stage(self) -> None:
        """Set what trains in the current stage, its optimizer and its cosine LR schedule."""
        stage = self.plan[self.stage_idx]
        if stage.index == 1:
            self.model.requires_grad_(False)
            self.model.embedder.requires_grad_(True)
            self.optimizer = self.stage1_optimizer()
        else:
            self.model.requires_grad_(True)
            if self.cfg.freeze_encoder:
                self.model.encoder.requires_grad_(False)
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = make_optimizer(self.cfg.optimizer, params, self.cfg.stage2_lr,
                                            self.cfg.stage2_weight_decay)
        steps = stage.epochs * (self.stage1_steps_per_epoch() if stage.index == 1 else self.stage2_steps_per_epoch())
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(steps, 1))

    def load_source(self, max_samples: int, exact_length: bool = False) -> None:
        """Load the backbone's labelled source surrogate (stage-1 methods; ``load_source_data``)."""
        src = load_source_data(get_backbone(self.cfg.backbone), self.cfg.data_root, self.data.input_shape,
                               getattr(self.model.embedder, "num_tokens", None), self.cfg.weights_path or None,
                               max_samples, self.cfg.data_seed, exact_length)
        self.source_x, self.source_y = torch.as_tensor(src.x), torch.as_tensor(src.y)
        self.source_num_classes = src.num_classes
        if self.cfg.stage1_cache and self.plan[0].index == 1:  # part of the stage-1 cache key
            self.source_digest = stage1_cache.combined_digest(
                stage1_cache.state_digests({"x": self.source_x, "y": self.source_y}))

    def source_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random source-surrogate batch on the device, drawn from the trial's data RNG."""
        idx = torch.randint(len(self.source_x), (size,), generator=self.generator)
        return self.source_x[idx].to(self.device), self.source_y[idx].to(self.device)

    # ---- training and evaluation --------------------------------------------------------------
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_x) / self.cfg.batch_size)

    def stage2_steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch() / self.cfg.grad_accum)

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled training batches on the trial's device (seeded order)."""
        order = torch.randperm(len(self.train_x), generator=self.generator)
        for i in range(0, len(order), self.cfg.batch_size):
            idx = order[i:i + self.cfg.batch_size]
            yield self.train_x[idx].to(self.device), self.train_y[idx].to(self.device)

    def set_train_mode(self) -> None:
        """Train mode, except a frozen encoder stays in eval (its BatchNorm stats fixed)."""
        self.model.train()
        if self.cfg.freeze_encoder or self.plan[self.stage_idx].index == 1:
            self.model.encoder.eval()

    def accumulate_and_step(self, loss: torch.Tensor, batch_index: int) -> None:
        """Back-propagate ``loss / grad_accum``; step every ``grad_accum`` batches (stage 2).

        Gradients of ``grad_accum`` consecutive batches are summed before an optimizer and LR
        schedule step; the epoch's last, partial group still steps.
        """
        (loss / self.cfg.grad_accum).backward()
        last = batch_index + 1 == self.batches_per_epoch()
        if (batch_index + 1) % self.cfg.grad_accum == 0 or last:
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

    def train_epoch(self) -> dict:
        """One epoch of the task loss (Eq. 1) over the trainable parameters."""
        self.set_train_mode()
        self.optimizer.zero_grad(set_to_none=True)
        total, seen = 0.0, 0
        for i, (x, y) in enumerate(self.train_batches()):
            loss = self.loss_fn(self.model(x), y)
            value = loss.item()  # one read of the loss per batch
            if not math.isfinite(value):
                return {"train_loss": value, "samples": seen}
            self.accumulate_and_step(loss, i)
            total += value * len(x)
            seen += len(x)
        return {"train_loss": total / seen, "samples": seen}

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        outs = []
        for i in range(0, len(x), 2 * self.cfg.batch_size):
            batch = torch.as_tensor(x[i:i + 2 * self.cfg.batch_size]).to(self.device)
            outs.append(self.model(batch).float().cpu().numpy())
        return np.concatenate(outs)

    def evaluate(self, split: str) -> float:
        x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
        mean, std = self.data.y_mean, self.data.y_std
        return self.metric.fn(denormalize(self.predict(x), mean, std), denormalize(y, mean, std))

    def _improves(self, val: float) -> bool:
        if math.isnan(self.best_val):
            return True
        return val < self.best_val if self.metric.mode == "min" else val > self.best_val

    def _final_test(self) -> float:
        """Test metric of the best-validation stage-2 weights, computed once per trial."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.evaluate("test")

    # ---- stage-1 cache (trainables.stage1_cache) ----------------------------------------------
    def stage1_inputs(self, digests: dict[str, str]) -> dict:
        """Everything stage 1 reads, as plain JSON values: what the stage-1 cache key hashes.

        Args:
            digests: ``state_digests`` of the model as stage 1 starts.
        """
        cfg = self.cfg
        # the method's own class: under Ray, type(self) is tune.with_resources' wrapper of it
        method = next(c for c in type(self).__mro__ if not c.__module__.startswith("ray."))
        return {
            "trainable": f"{method.__module__}.{method.__qualname__}",
            "config": {k: getattr(cfg, k) for k in BASE_STAGE1_KEYS + self.stage1_keys},
            "model": stage1_cache.combined_digest(digests),
            "source_embedder": stage1_cache.combined_digest(
                stage1_cache.state_digests(self.source_embedder.state_dict())),
            "source_surrogate": self.source_digest,
            "device": self.device.type, "torch": torch.__version__, "code": stage1_cache.code_digest(),
        }

    def _look_up_stage1(self) -> None:
        """As stage 1 starts: load a stored stage 1 (then replayed by ``step``), or prepare to
        publish this one. Nothing when the cache is off."""
        self.s1 = stage1_cache.Stage1Record()
        if not self.cfg.stage1_cache:
            return
        digests = stage1_cache.state_digests(self.model.state_dict())
        key = stage1_cache.cache_key(self.stage1_inputs(digests))
        entry = stage1_cache.load_entry(self.cfg.stage1_cache, key, self.model.state_dict(),
                                        self.plan[self.stage_idx].epochs, self._rng_states())
        if entry is None:
            self.s1 = stage1_cache.Stage1Record(key=key, digests=digests)
            return
        self.model.load_state_dict(entry.state, strict=False)  # the tensors stage 1 changed
        self._set_rng_states(entry.rng)  # where stage 1 left them: stage 2 draws the same numbers
        self.s1 = stage1_cache.Stage1Record(key=key, reused=True, rows=entry.rows, times=entry.times)
        log.info("trial %s: stage 1 reused from %s", self.trial_id,
                 stage1_cache.entry_path(self.cfg.stage1_cache, key))

    def _replay_stage1(self) -> dict:
        """One step of a reused stage 1: the stored result of this epoch, no training."""
        row = {**self.s1.rows[self.stage_epoch], **self.placement, "samples": 0}  # nothing trained
        self.stage_epoch += 1
        self.epoch += 1
        if self.stage_epoch >= self.plan[self.stage_idx].epochs:
            self._next_stage()
        return row

    def _record_stage1(self, result: dict, seconds: float) -> None:
        """Count a replayed step's saving, or keep a computed step's row; publish a computed
        stage 1 when it ends (not after divergence)."""
        if self.s1.reused:
            self.s1.saved_s += self.s1.times[self.epoch - 1] - seconds  # stage 1 is epochs 1..n
            return
        if not self.s1.key:
            return
        self.s1.rows.append({k: v for k, v in result.items() if k not in self.placement})
        self.s1.times.append(seconds)
        if self.plan[self.stage_idx].index == 2:
            self._publish_stage1()

    def _publish_stage1(self) -> None:
        """Store this trial's stage 1: the tensors it changed, its rows and times, the RNG states."""
        state = self.model.state_dict()
        changed = {k: v.detach().cpu() for k, v in state.items()
                   if stage1_cache.tensor_digest(v) != self.s1.digests[k]}
        entry = stage1_cache.Stage1Entry(changed, self.s1.rows, self.s1.times, self._rng_states())
        stage1_cache.publish(self.cfg.stage1_cache, self.s1.key, self.stage1_inputs(self.s1.digests), entry)

    def _rng_states(self) -> dict[str, torch.Tensor]:
        """The RNG states training draws from: torch's (CPU, and CUDA on a GPU) and the data generator."""
        states = {"torch": torch.get_rng_state(), "data": self.generator.get_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def _set_rng_states(self, states: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(states["torch"])
        self.generator.set_state(states["data"])
        if "cuda" in states:
            torch.cuda.set_rng_state(states["cuda"], self.device)

    # ---- stage-1 hooks (methods with a stage 1 implement these) ------------------------------
    def stage1_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError(f"{type(self).__name__} has no stage 1")

    def stage1_epoch(self) -> dict:
        """One stage-1 epoch; returns ``train_loss``, ``samples`` and any ``loss_part_keys``."""
        raise NotImplementedError(f"{type(self).__name__} has no stage 1")

    def stage1_steps_per_epoch(self) -> int:
        """Optimizer steps per stage-1 epoch (sets the cosine schedule's length)."""
        return self.batches_per_epoch()
