"""What every benchmark shares: interleaved repeats, medians, and appending to RESULTS.md;
complete trial configs, a private Ray, one sweep run end to end, and peak-memory probes.

Machines here are shared and noisy, so a figure is a ratio of two measurements taken side by
side (interleaved rounds in one process), each the median of its repeats.

The benchmarks are entry points, not library code: importing this module sets the environment
that Ray and Hugging Face read when *they* are imported (Ray on loopback only, DESIGN §8; no
network), so every script imports ``bench.common`` before anything that imports ray.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Read at import time by ray / huggingface_hub: set before either is imported (setdefault: a
# user's own choice wins).
BENCH_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every Ray process binds 127.0.0.1 (DESIGN §8)
    "HF_HUB_OFFLINE": "1",  # nothing downloaded at run time
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # short trials checkpoint often
}
for _key, _value in BENCH_ENV.items():
    os.environ.setdefault(_key, _value)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
VERSIONS = ("torch", "ray", "optuna", "timm", "transformers", "pot")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, few repeats")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    return p


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each callable, run in interleaved rounds (a, b, a, b, ...) after a warm-up."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine() -> str:
    try:
        load = "load %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load ?"
    versions = []
    for pkg in VERSIONS:
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return (f"{platform.node()}, {os.cpu_count()} CPUs, {load}; Python {platform.python_version()}; "
            f"{', '.join(versions)}")


def record(title: str, lines: list[str], quick: bool, no_record: bool) -> None:
    """Print a benchmark's figures and append them (with machine, versions, date) to RESULTS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = [f"### {title}{' (--quick)' if quick else ''} — {stamp}", f"_{machine()}_", "", *lines, ""]
    print("\n".join(block))
    if not no_record:
        with open(RESULTS, "a") as f:
            f.write("\n".join(block) + "\n")


# ---- configurations ----------------------------------------------------------------------------
# The embedded default (DESIGN §9) and the tests' toy task with its tiny random backbone (--quick).
EMBEDDED = dict(task="spherical", scale="mini", backbone="tf_efficientnet_lite0")
TOY = dict(task="test_toy_task", scale="mini", backbone="test_efficientnet", init="random")


def space_defaults(method: str, task_defaults: dict) -> dict:
    """Every searched dimension of ``method`` at its default (its space's ``defaults()``)."""
    from trainables.registry import get_method

    return get_method(method).defaults(task_defaults)


def trial_config(method: str, overrides: dict | None = None, **spec_kwargs) -> dict:
    """A complete trial config: the sweep's constants plus the space at its defaults
    (``ResolvedSpec.default_config``, as the sweep checks it), ``overrides`` last."""
    from tuner.spec import SweepSpec

    return {**SweepSpec(method=method, **spec_kwargs).resolve().default_config(), **(overrides or {})}


# ---- Ray and sweeps ------------------------------------------------------------------------------
@contextlib.contextmanager
def private_ray(num_cpus: int = 2) -> Iterator[None]:
    """A private local Ray (``tuner.cluster.start_ray``), always shut down (never ``ray stop``)."""
    import ray

    from tuner.cluster import start_ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; a benchmark starts its own")
    start_ray(None, num_cpus=num_cpus)
    try:
        yield
    finally:
        ray.shutdown()


def run_sweep(spec, trainable: type | None = None, search: dict | None = None,
              param_space: dict | None = None):
    """Resolve ``spec`` and run it through the sweep's own pipeline (``run_experiment``).

    Args:
        spec: a ``tuner.spec.SweepSpec``.
        trainable, search, param_space: as ``tuner.experiment.build_tuner``.

    Returns:
        The ``tuner.experiment.ExperimentRun``.

    Raises:
        RuntimeError: a trial errored (the store's error text is quoted).
    """
    from tuner.experiment import run_experiment

    run = run_experiment(spec.resolve(), trainable=trainable, search=search, param_space=param_space)
    if run.results.num_errors:
        errors = run.trials.loc[run.trials["status"] == "error", "error"].tolist()
        raise RuntimeError(f"sweep {run.resolved.name}: {run.results.num_errors} trial(s) errored: "
                           f"{str(errors[-1])[-800:] if errors else '?'}")
    return run


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for a benchmark's storage and data, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as d:
        yield Path(d)


# ---- memory ----------------------------------------------------------------------------------------
def rss_kb() -> int:
    """This process's resident set size now, in KiB (``VmRSS``)."""
    return _status_kb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (``echo 5 > /proc/self/clear_refs``).

    Returns:
        False where that is not possible: ``peak_rss_kb`` is then the peak over the whole life
        of the process, which only over-states later increases if an earlier phase peaked higher.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kb() -> int:
    """Peak resident set size in KiB: ``VmHWM`` (resettable), else ``ru_maxrss``."""
    try:
        return _status_kb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)
