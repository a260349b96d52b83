"""Range overrides for the define-by-run spaces (``--space FILE.yaml``), without editing code.

The file is a YAML mapping from dimension names (the config keys, or a space's ``ALIASES``)
to an override:

    stage2_lr: {low: 1.0e-4, high: 1.0e-2}   # a new range (the space's log/linear scale kept)
    inner_steps: [1, 2]                       # new choices (categorical or int dimensions)
    lam: 0.5                                  # a fixed value (not searched)

``read_overrides`` validates the file against the method's ``defaults()`` and names the line
of any offending entry; ``overridden_space`` runs a space with ranges and choices replaced.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import yaml

RANGE_KEYS = {"low", "high"}


class Yaml12FloatLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but ``1e-4`` is a float (YAML 1.2) rather than the string YAML 1.1
    makes of an exponent without a dot."""


Yaml12FloatLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class OverriddenTrial:
    """An Optuna trial whose ``suggest_*`` calls use overridden ranges and choices."""

    def __init__(self, trial, ranges: dict):
        self._trial, self._ranges = trial, ranges

    def suggest_float(self, name: str, low: float, high: float, **kwargs) -> float:
        low, high = self._bounds(name, low, high)
        return self._trial.suggest_float(name, low, high, **kwargs)

    def suggest_int(self, name: str, low: int, high: int, **kwargs) -> int:
        if isinstance(self._ranges.get(name), list):
            return self._trial.suggest_categorical(name, self._ranges[name])
        low, high = self._bounds(name, low, high)
        return self._trial.suggest_int(name, int(low), int(high), **kwargs)

    def suggest_categorical(self, name: str, choices) -> Any:
        return self._trial.suggest_categorical(name, self._ranges.get(name, choices))

    def _bounds(self, name: str, low, high):
        r = self._ranges.get(name)
        if isinstance(r, dict):
            return r["low"], r["high"]
        if isinstance(r, list):
            raise ValueError(f"--space: {name!r} is continuous; give it {{low: .., high: ..}}, not choices")
        return low, high

    def __getattr__(self, item: str):
        return getattr(self._trial, item)


def overridden_space(trial, space: Callable, defaults: dict, ranges: dict, held: dict | None = None) -> dict:
    """``space`` with ``ranges`` applied and ``held`` values returned over its own constants
    (module-level so ``functools.partial`` pickles it).

    A held searched dimension is also fixed in the sampler (``PartialFixedSampler``); returning
    it here as well makes a held *constant* (e.g. ORCA's ``source_samples``) reach the config,
    since a define-by-run space's returned dict is the last word on a trial's values.
    """
    return {**(space(OverriddenTrial(trial, ranges), defaults=defaults) or {}), **(held or {})}


def read_overrides(path: str, dims: dict, aliases: dict) -> tuple[dict, dict]:
    """Parse and check an override file.

    Args:
        dims: the method's ``defaults()`` (dimension -> default value, giving the type).
        aliases: user-facing name -> config key.

    Returns:
        (ranges, fixed): ranges maps keys to ``{"low", "high"}`` dicts or choice lists; fixed
        maps keys to values.

    Raises:
        ValueError: "FILE line N: ..." for a malformed file or entry, naming the key.
    """
    try:
        with open(path) as f:
            root = yaml.compose(f, Loader=Yaml12FloatLoader)
    except OSError as e:
        raise ValueError(f"--space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ValueError(f"--space {path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if root is None:
        return {}, {}
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"--space {path} line {root.start_mark.line + 1}: expected a mapping 'dimension: override'")
    ranges, fixed = {}, {}
    for key_node, value_node in root.value:
        line = f"--space {path} line {key_node.start_mark.line + 1}"
        name = key_node.value
        key = aliases.get(name, name)
        if key not in dims:
            raise ValueError(f"{line}: unknown dimension {name!r}. Valid: {', '.join(sorted(set(dims) | set(aliases)))}")
        if key in ranges or key in fixed:
            raise ValueError(f"{line}: {name!r} appears twice")
        value = yaml.SafeLoader(yaml.serialize(value_node)).get_single_data()
        default = dims[key]
        if isinstance(value, dict):
            if set(value) != RANGE_KEYS or not all(_number(v) for v in value.values()) or value["low"] >= value["high"]:
                raise ValueError(f"{line}: {name!r} range must be {{low: a, high: b}} with numbers a < b, got {value}")
            if not _number(default):
                raise ValueError(f"{line}: {name!r} is not numeric; give choices or a value")
            ranges[key] = {"low": value["low"], "high": value["high"]}
        elif isinstance(value, list):
            if not value:
                raise ValueError(f"{line}: {name!r} has an empty list of choices")
            ranges[key] = value
        elif isinstance(value, type(default)) or (_number(value) and _number(default)):
            fixed[key] = type(default)(value)
        else:
            raise ValueError(f"{line}: {name!r} = {value!r} is not a {type(default).__name__}")
    return ranges, fixed


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
