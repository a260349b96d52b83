"""The benchmark scripts (bench/, issue #8) run end to end in their --quick mode.

Each script runs as a user would run it (``python -m bench.<name> --quick --no-record``, a
subprocess: tests never import bench/), must exit 0, print its Markdown block with every figure
the full run records, and leave ``bench/RESULTS.md`` untouched. Performance itself is measured
in bench/, never asserted here: the quick modes are too small for their numbers to mean anything.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
TIMEOUT_S = 900  # generous: the machine's 2 CPUs are shared; an idle machine needs a fraction

# script -> (title, patterns every printed block must contain)
SCRIPTS = {
    "otdd_cache": ("ORCA OTDD objective", [
        rf"\| emd, cached \| {NUMBER} \|", rf"\| sinkhorn, recomputed \| {NUMBER} \|",
        rf"- emd: recomputed / cached = {NUMBER}x; values differ by"]),
    "method_step_cost": ("Method step cost", [
        rf"\| plain fine-tune \(stage 2\) \| {NUMBER} \| 1\.00 \| 32 \|",
        rf"\| mona exact \(stage 1\) \| {NUMBER} \| {NUMBER} \|",
        rf"\| mona jvp \(stage 1\) \| {NUMBER} \| {NUMBER} \|",
        rf"\| emb \(stage 1\) \| {NUMBER} \|", rf"\| orca \(stage-1 step\) \| {NUMBER} \|",
        rf"\| pare warm-up \(relaxed top-k\) \| {NUMBER} \|",
        rf"- MoNA step / plain step: exact {NUMBER}x, jvp {NUMBER}x",
        rf"\| exact \| {NUMBER} \|", rf"\| jvp \| {NUMBER} \|",
        rf"- MoNA jvp / exact peak memory: {NUMBER}x"]),
    "framework_overhead": ("Framework overhead", [
        rf"\| bare loop in the driver \| {NUMBER} \|",
        rf"\| Tune trial: trainable's samples_per_s \(training loop\) \| {NUMBER} \| 1 \| {NUMBER} \|",
        rf"- framework overhead: Tune training throughput / bare = {NUMBER} \(target: >= 0\.95\); "
        rf"whole step {NUMBER}; driver-seen {NUMBER}",
        rf"\| Tune trial's training loop, per CPU second of its thread \| {NUMBER} \| 1 \|",
        rf"- same per CPU second \(work done, not CPU share obtained\): {NUMBER}"]),
    "search_efficiency": ("Search efficiency", [
        rf"\| 0\.0001 \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|",  # the grid's curves: 3 lr x 2 epochs
        rf"Grid's best validation error {NUMBER}% -> target <= {NUMBER}%",
        r"\| TPE\+ASHA \(replay\) \| 2 \|", r"\| random search \(replay\) \| 2 \|",
        r"\| random search \+ ASHA \(replay\) \| 2 \|", r"\| one-epoch screen, top 3 continued \(simulated\) \| 1 \|",
        r"\| full grid \(real run\) \| 1 \| 6 \|",
        rf"- TPE\+ASHA reaches within 1 point of the grid's best after a median (never|{NUMBER}%) of the full grid's "
        r"6 trial-epochs .*: target (met|MISSED)",
        r"- replay validation: TPE\+ASHA at searcher seed 0 run for real .* Every \(lr, epoch\) validation error the "
        rf"real run saw \([0-9]+ results\) equals the grid's: largest difference {NUMBER} points"]),
    "branching_cost": ("Branching search vs plain TPE+ASHA", [
        rf"\| plain TPE\+ASHA \| 4 \([^)]*\) \| 4 \| {NUMBER} \| {NUMBER} \|",
        rf"\| branching, K = 2 \| 4 \([^)]*\) \| 2 \| {NUMBER} \| {NUMBER} \|",
        rf"- branching / plain TPE\+ASHA trial-seconds: {NUMBER}x \(target <= 0\.5x: (met|MISSED by {NUMBER})\)"]),
    "packing": ("Packing and node scaling", [
        rf"\| local Ray, 2 CPUs, 0\.5 CPU per trial \(4 at once\) \| {NUMBER} \| 1 \|",
        rf"\| local Ray, 2 CPUs, 1 CPU per trial \(2 at once\) \| {NUMBER} \| 1 \|",
        rf"\| simulated cluster, 2 node\(s\) x 1 CPU, 1 CPU per trial \| {NUMBER} \| 1 \|",
        rf"- packing: 0\.5 CPU per trial / 1 CPU per trial = {NUMBER}x",
        rf"- scaling: 2 nodes / 1 node = {NUMBER}x"]),
    "whole_run": ("Whole run", [
        rf"\| README main command --smoke-test: `--task spherical --method finetune --smoke-test` \| {NUMBER} \| "
        r"2 \(2 completed\) \|",
        rf"\| λ-sensitivity --smoke-test, 2 values x 1 seed \(mona\): `[^`]+` \| {NUMBER} \| 2 \(2 completed\) \|"]),
}
USES_RAY = {"branching_cost", "framework_overhead", "search_efficiency", "packing", "whole_run"}


def _marks(script: str) -> list:
    return [pytest.mark.slow] + ([pytest.mark.ray] if script in USES_RAY else [])


@pytest.mark.parametrize("script", [pytest.param(s, marks=_marks(s)) for s in SCRIPTS])
def test_quick_mode_prints_its_figures_and_records_nothing(script):
    title, patterns = SCRIPTS[script]
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    out = subprocess.run([sys.executable, "-m", f"bench.{script}", "--quick", "--no-record"], cwd=REPO,
                         capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    block = out.stdout[out.stdout.rfind("### "):]  # the figures' block comes last
    assert block.startswith(f"### {title}") and "(--quick)" in block.splitlines()[0], block[:300]
    assert re.search(r"^_.+, \d+ CPUs, load [0-9.?]+; Python ", block, re.MULTILINE), "machine line missing"
    for pattern in patterns:
        assert re.search(pattern, block), f"{pattern!r} not in:\n{block}"
    after = RESULTS.read_bytes() if RESULTS.exists() else None
    assert after == before, "--no-record must not touch bench/RESULTS.md"


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_paper_scale_script_runs_every_phase_on_the_cpu(tmp_path):
    """``bench.gpu_paper_scale --cpu-smoke``: the device script's phases on a tiny Swin (the
    script is meant for a GPU machine, where a failed run costs scarce device time)."""
    before = RESULTS.read_bytes()
    out = subprocess.run([sys.executable, "-m", "bench.gpu_paper_scale", "all", "--cpu-smoke",
                          "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                          "--storage", str(tmp_path / "storage")],
                         cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    figures = (tmp_path / "out" / "gpu_paper_scale.json").read_text()
    for key in ("plain", "mona exact", "trials_per_hour"):
        assert key in figures, figures[:2000]
    assert RESULTS.read_bytes() == before
