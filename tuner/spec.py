"""``SweepSpec``: the one typed description of a sweep, from the CLI to the Tuner.

The CLI only parses flags into a ``SweepSpec``; ``resolve()`` validates every name and
choice and settles the scale (auto -> paper or mini) *before* Ray starts, so bad input
fails in a second, not twenty minutes into a worker. Nothing below sees argparse.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from search_spaces.dimensions import describe_distribution, space_defaults, space_dimensions, space_distributions
from search_spaces.overrides import read_overrides
from trainables.models.backbones import default_backbone, pretrained_available
from trainables.paths import data_root
from trainables.registry import SCALES, get_backbone, get_method, get_task

log = logging.getLogger(__name__)

SCALE_CHOICES = ("auto",) + SCALES
INIT_CHOICES = ("pretrained", "random")
DATA_SEED = 0  # generated datasets are the same for every trial and seed
VAL_FRACTION = 0.1  # validation split carved from the training data (--val-fraction)
SMOKE_TEST = {"num_samples": 2, "max_epochs": 1, "max_train_samples": 128}


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as the user asked for it. ``resolve()`` returns a ``ResolvedSpec``."""

    task: str
    method: str
    scale: str = "auto"
    backbone: str | None = None
    data_dir: str | None = None
    init: str = "pretrained"
    weights: str | None = None
    num_samples: int = 8
    max_epochs: int | None = None  # stage-2 epochs; None = the task's default for the scale
    max_train_samples: int | None = None  # None = the task's default for the scale (0 = all)
    val_fraction: float = VAL_FRACTION
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0 = as many as resources allow
    grace_period: int = 1
    reduction_factor: int = 2
    storage: str = "results"
    name: str | None = None
    seed: int = 0
    smoke_test: bool = False
    sensitivity: str | None = None  # "name=v1,v2,...": a grid over one dimension, no pruning
    seeds: int = 1  # repeats of every grid value (sensitivity mode) or of the defaults (at_defaults)
    at_defaults: bool = False  # every dimension at its default (or --set) x --seeds; no search, no pruning
    fixed: tuple[str, ...] = ()  # "name=value": dimensions held at a value instead of searched
    space_file: str | None = None  # YAML overrides of the space's ranges (search_spaces.overrides)
    max_failures: int = 0  # retries of a crashed trial, each from its last checkpoint
    stage1_cache: str | None = None  # stage-1 cache directory; None = <storage>/<name>/stage1_cache
    no_stage1_cache: bool = False  # every trial computes its stage 1
    budget_samples: int = 0  # end the sweep once its trials trained on this many samples (tuner.budget); 0 = none
    branching: int = 0  # search mode: K stage-1 configurations, stage 2 branching from each (tuner.branching); 0 = off

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SweepSpec":
        """Inverse of ``to_dict`` (JSON turns the tuple of ``--set`` items into a list).

        Raises:
            ValueError: keys this version does not know (a spec from another version).
        """
        unknown = sorted(values.keys() - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"sweep spec has unknown keys {unknown}: written by another version of "
                             "crossmodal-tune? Resume it with that version.")
        return cls(**{k: tuple(v) if k == "fixed" else v for k, v in values.items()})

    def resolve(self) -> "ResolvedSpec":
        """Validate names and ranges, settle scale and backbone, fill task defaults.

        Raises:
            KeyError: unknown task, method or backbone (with the closest registered name).
            ValueError: an out-of-range number, an unknown choice, a missing paper-scale file.
        """
        spec = dataclasses.replace(self, **SMOKE_TEST) if self.smoke_test else self
        task, method = get_task(spec.task), get_method(spec.method)
        spec._check_ranges()
        env = resolve_environment(spec.task, spec.scale, spec.backbone, spec.data_dir, spec.init, spec.weights)
        scale, reason, root = env.scale, env.fallback_reason, env.data_root
        defaults = space_defaults(task, scale)
        dims = space_dimensions(method, defaults)
        ranges, file_fixed = read_space_file(method, dims, spec.space_file)
        grid, fixed = parse_dimensions(method, dims, defaults, spec.sensitivity, spec.fixed, file_fixed,
                                       spec.at_defaults)
        storage = absolute_storage(spec.storage)
        name = spec.name or f"{spec.task}-{spec.method}-{time.strftime('%Y%m%d-%H%M%S')}"
        resolved = ResolvedSpec(
            spec=spec, scale=scale, backbone=env.backbone, data_root=root,
            defaults=defaults, fallback_reason=reason, storage=storage, name=name,
            method_constants=dict(method.constants), grid=grid, fixed=fixed, ranges=ranges,
            stage1_cache=stage1_cache_dir(spec, storage, name),
        )
        resolved.check_default_config()
        resolved.check_branching()
        return resolved

    def _check_ranges(self) -> None:
        if self.init not in INIT_CHOICES:
            raise ValueError(f"--init must be one of {INIT_CHOICES}, got {self.init!r}")
        checks = [("--num-samples", self.num_samples >= 1), ("--cpus-per-trial", self.cpus_per_trial > 0),
                  ("--gpus-per-trial", self.gpus_per_trial >= 0), ("--val-fraction", 0 < self.val_fraction < 1),
                  ("--max-epochs", self.max_epochs is None or self.max_epochs >= 1),
                  ("--grace-period", self.grace_period >= 1), ("--reduction-factor", self.reduction_factor >= 2),
                  ("--seeds", self.seeds >= 1), ("--max-failures", self.max_failures >= 0),
                  ("--branching", self.branching >= 0), ("--budget-samples", self.budget_samples >= 0)]
        if self.at_defaults and self.sensitivity:
            raise ValueError("--at-defaults and --sensitivity exclude each other (both hold the other dimensions)")
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"{flag} is out of range: {getattr(self, flag[2:].replace('-', '_'))}")
        if self.stage1_cache is not None and (self.no_stage1_cache or "://" in self.stage1_cache):
            raise ValueError(f"--stage1-cache {self.stage1_cache}: give a local or mounted directory (not a URI), "
                             "and not together with --no-stage1-cache")
        if self.weights and not Path(self.weights).expanduser().exists():
            raise ValueError(f"--weights {self.weights}: no such file or directory")


@dataclass(frozen=True)
class RunEnvironment:
    """Where and at what scale a task runs, whatever the method: ``resolve_environment``."""

    scale: str  # "mini" | "paper"
    backbone: str
    data_root: str
    fallback_reason: str  # why --scale auto fell back to the embedded default ("" if it did not)


def resolve_environment(task_name: str, scale: str = "auto", backbone: str | None = None,
                        data_dir: str | None = None, init: str = "pretrained",
                        weights: str | None = None) -> RunEnvironment:
    """Settle scale (auto -> paper when the task's files and the backbone's weights are here),
    backbone and data root for a task; logs a fallback to the embedded default in one line.

    Raises:
        KeyError: unknown task or backbone.
        ValueError: a missing paper-scale file or weights, a backbone of the other modality.
    """
    task = get_task(task_name)
    if scale not in SCALE_CHOICES:
        raise ValueError(f"--scale must be one of {SCALE_CHOICES}, got {scale!r}")
    root = data_root(data_dir)
    scale, reason = _settle_scale(task, root, scale, backbone, init, weights)
    if reason:
        log.warning(reason)
    chosen = get_backbone(backbone or default_backbone(task.modality, scale))
    if chosen.modality != task.modality:
        raise ValueError(f"backbone {chosen.name!r} is {chosen.modality}, task {task.name!r} is {task.modality}")
    if scale == "paper" and init == "pretrained" and not pretrained_available(chosen, weights):
        raise ValueError(
            f"--scale paper: no local pretrained weights for {chosen.name}. Pass --weights FILE, "
            "populate the Hugging Face cache on this machine, use --init random on purpose, or "
            "--scale mini for the embedded default."
        )
    return RunEnvironment(scale, chosen.name, str(root), reason)


def _settle_scale(task, root: Path, scale: str, backbone: str | None, init: str,
                  weights: str | None) -> tuple[str, str]:
    """(scale, fallback message). auto -> paper when its data and weights are present."""
    missing = [f for f in task.data_files if not (root / f).exists()]
    if scale == "paper":
        if missing:
            raise ValueError(
                f"--scale paper: task {task.name!r} needs {', '.join(missing)} in {root}. "
                "Put the files there (or pass --data-dir), or use --scale mini for the embedded default."
            )
        return "paper", ""
    if scale == "mini":
        if not task.has_mini:
            raise ValueError(f"task {task.name!r} has no embedded (mini) variant; use --scale paper")
        return "mini", ""
    paper_backbone = get_backbone(backbone or default_backbone(task.modality, "paper"))
    # weights looked up only when the data is here (a timm backbone's lookup imports timm: ~5 s)
    if not missing and (init == "random" or pretrained_available(paper_backbone, weights)):
        return "paper", ""
    if not task.has_mini:
        raise ValueError(f"task {task.name!r} needs {', '.join(missing) or 'pretrained weights'} "
                         f"and has no embedded variant")
    lacking = (f"{', '.join(missing)} not in {root}" if missing
               else f"no local weights for {paper_backbone.name}")
    return "mini", f"--scale auto: {lacking}; running the embedded default (mini scale) instead."


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated sweep: what ``build_tuner`` consumes."""

    spec: SweepSpec
    scale: str
    backbone: str
    data_root: str
    defaults: dict
    fallback_reason: str
    storage: str
    name: str
    method_constants: dict
    grid: tuple[str, tuple] | None  # sensitivity mode: (config key, values)
    fixed: dict  # held dimensions: every default in sensitivity / at-defaults mode, else the --set values
    ranges: dict  # --space range/choice overrides for the searched dimensions
    stage1_cache: str  # the stage-1 cache directory trials use ("" = off): stage1_cache_dir

    @property
    def expected_trials(self) -> int:
        """Trials the experiment runs: --num-samples, or grid values x seeds in sensitivity mode,
        or seeds at the defaults."""
        if self.grid is not None:
            return len(self.grid[1]) * self.spec.seeds
        return self.spec.seeds if self.spec.at_defaults else self.spec.num_samples

    @property
    def repeats(self) -> bool:
        """Seeds x fixed configurations, to full length (sensitivity or at-defaults mode)."""
        return self.grid is not None or self.spec.at_defaults

    @property
    def stage2_epochs(self) -> int:
        return self.spec.max_epochs or self.defaults["epochs"]

    def varying_keys(self) -> tuple[str, ...]:
        """The config keys whose values differ between trials: the searched dimensions (search
        mode; ``--set`` / fixed ``--space`` ones excluded), or the grid's dimension and ``seed``."""
        if self.repeats:
            return ((self.grid[0],) if self.grid is not None else ()) + ("seed",)
        return tuple(k for k in get_method(self.spec.method).defaults(self.defaults) if k not in self.fixed)

    def trial_constants(self) -> dict:
        """The fixed part of every trial's config (plain JSON values).

        ``--set`` values of the method's constants (e.g. ``embedder_init``) replace them here."""
        s = self.spec
        max_train = s.max_train_samples if s.max_train_samples is not None else self.defaults["max_train_samples"]
        constants = {
            "task": s.task, "backbone": self.backbone, "scale": self.scale, "data_root": self.data_root,
            "data_seed": DATA_SEED, "val_fraction": s.val_fraction, "max_train_samples": max_train,
            "seed": s.seed, "encoder_init": s.init, "embedder_init": "random", "freeze_encoder": False,
            "weights_path": str(Path(s.weights).expanduser().resolve()) if s.weights else "",
            "target_seq_len": self.defaults["target_seq_len"],
            "optimizer": self.defaults["optimizer"], "batch_size": self.defaults["batch_size"],
            "grad_accum": self.defaults["grad_accum"],
            "stage2_epochs": self.stage2_epochs, "num_threads": max(1, int(s.cpus_per_trial)),
            "stage1_cache": self.stage1_cache,
        }
        constants.update(self.method_constants)
        constants.update({k: v for k, v in self.fixed.items() if k in constants})
        return constants

    def default_config(self) -> dict:
        """One complete trial config: constants, held values and every searched dimension at its
        default (the space run on an Optuna ``FixedTrial``, so the constants it returns are its own)."""
        method = get_method(self.spec.method)
        trial = optuna.trial.FixedTrial({**method.defaults(self.defaults), **self.fixed})
        returned = method.space(trial, defaults=self.defaults) or {}
        return {**self.trial_constants(), **trial.params, **returned, **self.fixed}

    def check_default_config(self) -> None:
        """Refuse, before Ray starts, a held value the method's config would refuse in every trial.

        Raises:
            ValueError: the config class's message, naming the field.
        """
        get_method(self.spec.method).trainable.config_class.from_config(self.default_config())

    @property
    def root_seeds(self) -> tuple[int, ...]:
        """The trial seeds of branching mode's stage-1 roots (``--seeds`` of them from ``--seed``)."""
        return tuple(self.spec.seed + i for i in range(self.spec.seeds))

    def searched_stage1_keys(self) -> tuple[str, ...]:
        """The searched dimensions (not held) that the method's stage 1 reads."""
        method = get_method(self.spec.method)
        searched = space_distributions(method, self.defaults)
        return tuple(k for k in method.trainable.stage1_keys if k in searched and k not in self.fixed)

    def check_branching(self) -> None:
        """Refuse ``--branching`` where it cannot share a stage 1 (``tuner.branching``).

        Raises:
            ValueError: one line naming the conflict.
        """
        s = self.spec
        if not s.branching:
            return
        method = get_method(s.method)
        problems = [
            (self.repeats, "it is a search mode (not with --sensitivity or --at-defaults)"),
            (method.trainable.stage1_name is None, f"method {s.method!r} has no stage 1 to share"),
            (not self.stage1_cache, "branches read their root's stage 1 from the stage-1 cache, which is off "
                                    "(--no-stage1-cache, or an object-store --storage without --stage1-cache DIR)"),
            (s.num_samples < s.branching * s.seeds, f"--num-samples {s.num_samples} < {s.branching} stage-1 "
                                                    f"configurations x {s.seeds} seed(s): no trial left to branch"),
            (s.branching > 1 and not self.searched_stage1_keys(),
             "every stage-1 dimension is held, so all configurations would be one: use --branching 1"),
        ]
        for bad, why in problems:
            if bad:
                raise ValueError(f"--branching {s.branching}: {why}")

    def result_columns(self) -> dict:
        """Static columns every stored trial row carries."""
        return {"task": self.spec.task, "method": self.spec.method, "backbone": self.backbone,
                "scale": self.scale, "code_version": code_version()}


def read_space_file(method, dims: dict, path: str | None) -> tuple[dict, dict]:
    """(ranges, fixed values) from a ``--space`` YAML file; empty without one.

    Args:
        dims: ``space_dimensions``: every settable name and its default.
    """
    if path is None:
        return {}, {}
    return read_overrides(path, dims, method.aliases)


def parse_dimensions(method, dims: dict, task_defaults: dict, sensitivity: str | None, fixed: tuple[str, ...],
                     file_fixed: dict | None = None, at_defaults: bool = False
                     ) -> tuple[tuple[str, tuple] | None, dict]:
    """Parse ``--sensitivity name=v1,v2`` and ``--set name=value`` against a method's space.

    Values take the type of the dimension's default (int, float, str or bool). In sensitivity
    mode every dimension not on the grid is held: at its default, or at its ``--set`` value;
    ``at_defaults`` holds every dimension so (no grid).
    Constants (the method's and those its space returns) can be set and gridded like searched
    dimensions; a held value always wins over the constant it replaces.

    Args:
        dims: ``space_dimensions``: every settable name and its default.

    Returns:
        (grid, held): grid is ``(config_key, values)`` or None; held maps config keys to values.

    Raises:
        ValueError: a malformed item or an unknown dimension (naming the valid ones).
    """
    aliases = method.aliases
    searched = space_distributions(method, task_defaults)

    def split(item: str, flag: str) -> tuple[str, list]:
        name, sep, raw = item.partition("=")
        key = aliases.get(name.strip(), name.strip())
        if not sep or not raw.strip():
            raise ValueError(f"{flag} {item!r}: expected NAME=VALUE[,VALUE...]. The dimensions of "
                             f"{method.name} (default; searched range):\n"
                             + describe_dimensions(dims, searched, aliases))
        if key not in dims:
            names = sorted(set(dims) | set(aliases))
            raise ValueError(f"{flag} {name!r}: not a dimension of {method.space_module.__name__}. Valid: {', '.join(names)}")
        values = [_typed(v.strip(), dims[key], flag, name) for v in raw.split(",")]
        for value in values:
            check_in_space(key, value, searched.get(key), f"{flag} {name}={value}")
        return key, values

    held = dict(file_fixed or {})
    for item in fixed:
        key, values = split(item, "--set")
        if len(values) != 1:
            raise ValueError(f"--set {item!r}: one value expected")
        held[key] = values[0]
    if sensitivity is None and not at_defaults:
        return None, held
    key, values = split(sensitivity, "--sensitivity") if sensitivity is not None else (None, [])
    if key in held:
        raise ValueError(f"--sensitivity {key!r} is also fixed by --set")
    if len(set(values)) != len(values):
        raise ValueError(f"--sensitivity {sensitivity!r}: repeated values")
    user = held
    held = {k: v for k, v in {**dims, **user}.items() if k != key}
    # Constants the space returns (e.g. ORCA's ot_reg for "emd") come from one run of it at the
    # grid's first point: an Optuna FixedTrial answers every suggest_* from the held values.
    first = {key: values[0]} if key else {}
    constants = method.space(optuna.trial.FixedTrial({**held, **first}), defaults=task_defaults) or {}
    constants.pop(key, None)
    return ((key, tuple(values)) if key else None), {**held, **constants, **user}


def describe_dimensions(dims: dict, searched: dict, aliases: dict) -> str:
    """One line per settable dimension: name (alias), default, searched range or "constant"."""
    alias_of = {key: name for name, key in aliases.items()}
    lines = []
    for key, default in sorted(dims.items()):
        name = f"{alias_of[key]} ({key})" if key in alias_of else key
        where = describe_distribution(searched[key]) if key in searched else "constant"
        lines.append(f"  {name}: {default!r}; {where}")
    return "\n".join(lines)


def check_in_space(key: str, value, dist, what: str) -> None:
    """Refuse a held or grid value the searched distribution cannot represent (a categorical's
    value outside its choices, a log dimension's value <= 0), naming the range. Values outside
    a float or int range are allowed: holding a dimension beyond its search range is a choice.

    Raises:
        ValueError: ``what`` and the dimension's range.
    """
    if dist is None:
        return
    if isinstance(dist, optuna.distributions.CategoricalDistribution) and value not in dist.choices:
        raise ValueError(f"{what}: {key} is searched as {describe_distribution(dist)}; a held value must be "
                         "one of them (give other choices with --space)")
    if getattr(dist, "log", False) and not value > 0:
        raise ValueError(f"{what}: {key} is searched on a log scale ({describe_distribution(dist)}); "
                         "it must be > 0")


def _typed(raw: str, default, flag: str, name: str):
    kind = type(default)
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        return kind(raw)
    except ValueError:
        raise ValueError(f"{flag} {name}={raw!r}: expected a {kind.__name__}") from None


def stage1_cache_dir(spec: SweepSpec, storage: str, name: str) -> str:
    """Where the trials keep and look up stage-1 results ("" = off): ``--stage1-cache DIR`` (shared
    by the experiments that name it), else ``<storage>/<name>/stage1_cache``. Off with
    ``--no-stage1-cache``, and (one logged line) on an object-store ``--storage`` without a DIR:
    publishing needs a local or mounted filesystem's atomic hard links."""
    if spec.no_stage1_cache:
        return ""
    if spec.stage1_cache is not None:
        return str(Path(spec.stage1_cache).expanduser().resolve())
    if "://" in storage:
        log.warning("stage-1 cache off: --storage %s is not a local or mounted path (the cache publishes by "
                    "hard link); pass --stage1-cache DIR on a shared mount to keep one", storage)
        return ""
    return str(Path(storage) / name / "stage1_cache")


def absolute_storage(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def code_version() -> str:
    """The package version plus the git commit when run from a checkout."""
    import subprocess

    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("crossmodal-tune")
    except PackageNotFoundError:
        v = "unknown"
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        sha = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{v}+{sha}" if sha else v
