"""Registries of methods, tasks and backbones: the names are the API.

A registered name is what the CLI takes, what the Parquet store records and what test ids
show. Each entry carries typed metadata (cf. timm's ``PretrainedCfg``) so that no code
outside a task's, method's or backbone's own module branches on its name.

Lookups fail helpfully: they list the registered names and the closest match.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Generic, TypeVar

SCALES = ("mini", "paper")


@dataclass(frozen=True)
class TaskDefaults:
    """A task's stage-2 fine-tuning defaults at one scale: MoNA's Tables 9 and 11 at paper
    scale, CPU-sized values for an embedded variant. The searched dimensions' defaults and
    ranges are built from them (``tuner.spec.space_defaults``)."""

    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    optimizer: str  # "adamw" | "adam" | "sgd"
    grad_accum: int = 1
    target_seq_len: int = 0  # 1-D tasks: the most tokens the target embedder makes (0: the backbone's)
    max_train_samples: int = 0  # training subset (0: all of it)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: shapes, objective, metric and where its files live.

    ``input_shape`` and ``num_outputs`` describe the paper-scale data; the embedded
    ("mini") variant may differ and reports its own shapes in ``TaskData``.
    ``loader(data_root, scale, seed)`` returns ``trainables.tasks.data.RawTask``.
    ``defaults`` are the paper-scale stage-2 defaults, ``mini`` the embedded variant's
    (None: the task has no embedded variant).
    """

    name: str
    modality: str  # "2d" | "1d"
    output: str  # "classification" | "dense"
    input_shape: tuple[int, ...]
    num_outputs: int
    loss: str  # key of trainables.losses.TASK_LOSSES
    metric: str  # key of trainables.metrics.METRICS
    data_files: tuple[str, ...]  # relative to data_root(); what paper scale needs
    loader: Callable[..., Any]
    paper: str
    defaults: TaskDefaults
    mini: TaskDefaults | None = None
    hidden: bool = False  # test fixtures: registered but not offered by the CLI

    @property
    def has_mini(self) -> bool:
        """An embedded offline variant exists."""
        return self.mini is not None

    def defaults_at(self, scale: str) -> TaskDefaults:
        """The stage-2 defaults at ``scale`` ("mini" only where ``has_mini``)."""
        if scale == "mini":
            if self.mini is None:
                raise ValueError(f"task {self.name!r} has no embedded (mini) variant")
            return self.mini
        return self.defaults


@dataclass(frozen=True)
class BackboneSpec:
    """A pretrained source model and how to split it into stem and body.

    ``library`` is the package that builds the model: "timm" (2D backbones, ``model_id`` a
    timm model name) or "transformers" (1D backbones, ``model_id`` a Hugging Face hub id).
    ``stem`` names the submodules the target embedder replaces (timm's patch embedding or
    conv stem; a transformers model's ``embeddings``); everything after them up to the
    pooled features is the encoder.
    ``input_size`` is the side the input is resized to (None: keep the task's native size).
    ``layout`` is the body's output layout: "nhwc" (Swin), "nchw" (CNNs), "nld" (ViT, text).
    ``create_pretrained(model_id, weights_path, **create_kwargs)`` builds the pretrained model
    offline (None: no pretrained weights exist, e.g. test fixtures).
    ``target_seq_len`` (1D only): the most tokens the target embedder may make from a
    (C, L) input (ORCA's ``target_seq_len``). ``load_tokenizer(model_id, weights_path)``
    (1D only) returns the tokenizer the text source surrogate is tokenised with.
    """

    name: str
    library: str  # "timm" | "transformers"
    model_id: str
    modality: str
    stem: tuple[str, ...]
    layout: str
    input_size: int | None
    create_pretrained: Callable[..., Any] | None
    scale: str  # "paper" | "mini" | "test"
    source_surrogate: str  # name of the labelled source data used by stage-1 methods
    create_kwargs: dict = field(default_factory=dict)
    target_seq_len: int | None = None
    load_tokenizer: Callable[..., Any] | None = None
    hidden: bool = False


@dataclass(frozen=True)
class MethodSpec:
    """A method: its Trainable (imported on first use), its search-space module and its fixed
    constants. The space module gives the define-by-run ``space``, ``defaults()``,
    ``paper_settings()`` and ``ALIASES`` (``search_spaces/__init__.py``)."""

    name: str
    trainable_path: str  # "module:Class", imported by ``trainable``
    space_module: ModuleType  # search_spaces.<method>
    constants: dict = field(default_factory=dict)  # method-defining config values
    paper: str = ""
    hidden: bool = False

    @property
    def trainable(self) -> type:
        module, _, name = self.trainable_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def space(self) -> Callable[..., Any]:
        return self.space_module.space

    @property
    def aliases(self) -> dict[str, str]:
        """User-facing dimension names -> config keys (e.g. ``lambda`` -> ``lam``)."""
        return getattr(self.space_module, "ALIASES", {})

    def defaults(self, task_defaults: dict) -> dict:
        """Every searched dimension at its default (``tuner.spec.space_defaults`` input)."""
        return self.space_module.defaults(task_defaults)

    def paper_settings(self, task_defaults: dict) -> dict:
        """The papers' values at paper scale ({} at the embedded default)."""
        return self.space_module.paper_settings(task_defaults)


S = TypeVar("S")


class Registry(Generic[S]):
    """A name -> spec mapping that refuses duplicates and explains failed lookups."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, S] = {}

    def add(self, name: str, spec: S) -> S:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = spec
        return spec

    def get(self, name: str) -> S:
        if name not in self._entries:
            visible = self.names()
            close = difflib.get_close_matches(name, visible, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"Unknown {self.kind} {name!r}. Registered: {', '.join(visible)}.{hint} "
                f"See: python -m tuner list {self.kind}s"
            )
        return self._entries[name]

    def names(self, include_hidden: bool = False) -> list[str]:
        return sorted(n for n, s in self._entries.items() if include_hidden or not s.hidden)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


METHODS: Registry[MethodSpec] = Registry("method")
TASKS: Registry[TaskSpec] = Registry("task")
BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_task(name: str, **meta) -> Callable:
    """Decorator for a loader function: ``@register_task("spherical", modality="2d", ...)``."""

    def wrap(loader: Callable) -> Callable:
        TASKS.add(name, TaskSpec(name=name, loader=loader, **meta))
        return loader

    return wrap


def register_backbone(name: str, **meta) -> BackboneSpec:
    return BACKBONES.add(name, BackboneSpec(name=name, **meta))


def register_method(name: str, trainable_path: str, space_module: ModuleType, **meta) -> MethodSpec:
    return METHODS.add(name, MethodSpec(name=name, trainable_path=trainable_path, space_module=space_module, **meta))


def get_task(name: str) -> TaskSpec:
    _ensure_registered("tasks")
    return TASKS.get(name)


def get_backbone(name: str) -> BackboneSpec:
    _ensure_registered("backbones")
    return BACKBONES.get(name)


def get_method(name: str) -> MethodSpec:
    _ensure_registered("methods")
    return METHODS.get(name)


def list_tasks(include_hidden: bool = False) -> list[str]:
    _ensure_registered("tasks")
    return TASKS.names(include_hidden)


def list_backbones(include_hidden: bool = False) -> list[str]:
    _ensure_registered("backbones")
    return BACKBONES.names(include_hidden)


def list_methods(include_hidden: bool = False) -> list[str]:
    _ensure_registered("methods")
    return METHODS.names(include_hidden)


# The modules whose import registers each kind's entries (explicit lists, no directory
# scanning); a new task / backbone module is added here, a new method is a line in
# trainables/methods.py. Importing a kind imports only its own modules: task modules and the
# method table import neither torch nor Ray, backbone modules do.
REGISTERING_MODULES = {
    "tasks": ("trainables.tasks",),
    "backbones": ("trainables.models.backbones", "trainables.models.text_backbones"),
    "methods": ("trainables.methods",),
}


def _ensure_registered(kind: str) -> None:
    for module in REGISTERING_MODULES[kind]:
        importlib.import_module(module)
