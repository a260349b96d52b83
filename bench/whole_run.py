"""Figure 6 of issue #8: wall time of whole sweeps as a user runs them, each a fresh subprocess.

1. The README's main command: ``python -m tuner.sweep --task spherical --method finetune``
   (8 TPE+ASHA trials of the embedded default).
2. A λ-sensitivity curve of MoNA: ``--method mona --sensitivity lambda=0,0.1,0.3,0.5,1 --seeds 2
   --max-epochs 4 --set stage1_epochs=1`` (10 trials, every one to full length).

Each gets its own ``--storage`` and ``--name`` under a temporary directory; the wall time is
the subprocess's, from launch to exit (Python and Ray start-up, data preparation, the trials,
the summary). From the Parquet store: trials by status and the time spent inside trials
(sum of ``time_total_s``), giving the share of the 2 CPUs' wall time that trials used.
``--quick``: the same commands with ``--smoke-test`` (2 trials, 1 epoch, 128 samples; the
sensitivity grid cut to λ = 0, 1 and one seed).

    python -m bench.whole_run [--quick] [--no-record]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.common import parser, record, scratch_dir

# bench.common first: importing it sets the environment that ray reads when ray is imported.
# isort: split
from tuner import store

CPUS = os.cpu_count() or 1
COMMANDS = {
    "README main command (finetune, TPE+ASHA)": ["--task", "spherical", "--method", "finetune"],
    "λ-sensitivity, 5 values x 2 seeds (mona)": [
        "--task", "spherical", "--method", "mona", "--sensitivity", "lambda=0,0.1,0.3,0.5,1", "--seeds", "2",
        "--max-epochs", "4", "--set", "stage1_epochs=1"],
}
QUICK_COMMANDS = {
    "README main command --smoke-test": ["--task", "spherical", "--method", "finetune", "--smoke-test"],
    "λ-sensitivity --smoke-test, 2 values x 1 seed (mona)": [
        "--task", "spherical", "--method", "mona", "--sensitivity", "lambda=0,1", "--seeds", "1",
        "--set", "stage1_epochs=1", "--smoke-test"],
}


def timed_sweep(argv: list[str], storage: str, name: str) -> float:
    """Run ``python -m tuner.sweep ARGV --storage S --name N``; its wall seconds.

    Raises:
        RuntimeError: a non-zero exit (the output's tail is quoted).
    """
    cmd = [sys.executable, "-m", "tuner.sweep", *argv, "--storage", storage, "--name", name]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}:\n{(out.stdout + out.stderr)[-3000:]}")
    return wall


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    commands = QUICK_COMMANDS if args.quick else COMMANDS
    lines = [f"each command a fresh subprocess ({CPUS} CPUs, 1 CPU per trial), own --storage/--name", "",
             "| command | wall s | trials (status) | time inside trials s | trial share of CPU wall |",
             "|---|---|---|---|---|"]
    with scratch_dir("whole") as tmp:
        for i, (label, argv) in enumerate(commands.items()):
            name = f"run{i}"
            wall = timed_sweep(argv, str(tmp), name)
            trials = store.read_trials(str(tmp), name)
            statuses = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
            inside = float(trials["time_total_s"].sum())
            lines.append(f"| {label}: `{' '.join(argv)}` | {wall:.0f} | {len(trials)} ({statuses}) | "
                         f"{inside:.0f} | {inside / (wall * CPUS):.0%} |")
    record("Whole run: wall time of complete sweeps", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
