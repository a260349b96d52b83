"""What every benchmark shares: interleaved repeats, medians, and appending to RESULTS.md.

Machines here are shared and noisy, so a figure is a ratio of two measurements taken side by
side (interleaved rounds in one process), each the median of its repeats.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

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
    return f"{platform.node()}, {os.cpu_count()} CPUs, {load}; Python {platform.python_version()}; {', '.join(versions)}"


def record(title: str, lines: list[str], quick: bool, no_record: bool) -> None:
    """Print a benchmark's figures and append them (with machine, versions, date) to RESULTS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = [f"### {title}{' (--quick)' if quick else ''} — {stamp}", f"_{machine()}_", "", *lines, ""]
    print("\n".join(block))
    if not no_record:
        with open(RESULTS, "a") as f:
            f.write("\n".join(block) + "\n")
