"""Issue #15 point 3: the branching search (``--branching K``) vs plain TPE+ASHA on MoNA, for the
same number of stage-2 configurations.

Two sweeps of MoNA on the embedded default (Spherical MNIST, EfficientNet-Lite0, the task's normal
size, MoNA's whole space: stage-1 and stage-2 dimensions searched), each ``TRIALS`` trials, i.e.
``TRIALS`` stage-2 configurations, through the sweep's own pipeline (``run_experiment``) with
the project's TPE (searcher seed 0) and ASHA, two trials at a time on 2 CPUs:

- plain TPE+ASHA: every trial trains its own stage 1 (ASHA never prunes in stage 1);
- branching, K = ``CONFIGS``: K stage-1 configurations trained once each, the other trials branch
  their stage 2 from them (``tuner.branching``).

From the Parquet store: trial-seconds (the sum of the trials' ``time_total_s``, a branch's stage 1
being a replay of well under a second), training samples (``samples_total``: both stages, a
replayed stage 1 counting none), stage 1s computed, the sweep's wall time and the best validation
error. Target: branching <= 0.5x the trial-seconds of plain TPE+ASHA. One searcher seed per arm (the
cost ratio follows from how many stage 1s each trains; the best errors are one draw each, not a
comparison of search quality).

    python -m bench.branching_cost [--quick] [--no-record]
"""
from __future__ import annotations

from bench.common import EMBEDDED, TOY, parser, private_ray, record, run_sweep, scratch_dir

# bench.common first: importing it sets the environment that ray reads when ray is imported.
# isort: split
from tuner.spec import SweepSpec

METHOD = "mona"
TRIALS, CONFIGS = 8, 2
TARGET = 0.5


def run_arms(base: dict, trials: int, configs: int, tmp, **sizes) -> dict:
    """The two sweeps, alike but for ``branching``."""
    data_dir = str(tmp / "data") if base is TOY else None
    common = dict(method=METHOD, data_dir=data_dir, storage=str(tmp / "results"), seed=0, num_samples=trials,
                  **sizes, **base)
    return {"plain TPE+ASHA": run_sweep(SweepSpec(**common, name="plain")),
            f"branching, K = {configs}": run_sweep(SweepSpec(**common, name="branching", branching=configs))}


def row(name: str, run) -> tuple[str, float]:
    t = run.trials
    seconds = float(t["time_total_s"].sum())
    computed = int((~t["stage1_reused"].astype(bool)).sum())
    statuses = ", ".join(f"{n} {s}" for s, n in t["status"].value_counts().items())
    return (f"| {name} | {len(t)} ({statuses}) | {computed} | {seconds:.0f} | {t['samples_total'].sum():.0f} | "
            f"{float(t['stage1_time_s'].sum()):.0f} | {float(t['stage2_time_s'].sum()):.0f} | {run.wall_s:.0f} | "
            f"{t['best_val_metric'].min():.2f} |"), seconds


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    if args.quick:
        base, trials, configs, sizes = TOY, 4, 2, dict(max_epochs=1, max_train_samples=64)
    else:
        base, trials, configs, sizes = EMBEDDED, TRIALS, CONFIGS, {}
    with scratch_dir("branching") as tmp, private_ray(num_cpus=2):
        runs = run_arms(base, trials, configs, tmp, **sizes)
    setup = "toy task, test_efficientnet" if args.quick else "Spherical MNIST 1x32x32, EfficientNet-Lite0"
    lines = [f"{setup}; MoNA, its whole space searched, the task's default size{' (quick: shrunk)' if args.quick else ''}; "
             f"{trials} trials (= stage-2 configurations) per sweep, TPE (seed 0) + ASHA, 2 trials at a time", "",
             "| sweep | trials (status) | stage 1s trained | trial-seconds | training samples | stage-1 s | "
             "stage-2 s | sweep wall s | best val error |", "|---|---|---|---|---|---|---|---|---|"]
    seconds = {}
    for name, run in runs.items():
        line, seconds[name] = row(name, run)
        lines.append(line)
    plain, branching = seconds.values()
    ratio = branching / plain
    verdict = "met" if ratio <= TARGET else f"MISSED by {ratio - TARGET:.2f}"
    lines += ["", f"- branching / plain TPE+ASHA trial-seconds: {ratio:.2f}x (target <= {TARGET}x: {verdict})"]
    record("Branching search vs plain TPE+ASHA (MoNA): trial-seconds", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
