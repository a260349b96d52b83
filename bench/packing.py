"""Figure 5 of issue #8: trials per hour when trials are packed at 0.5 vs 1 CPU each, and the
scaling of one sweep from 1 to 2 (simulated) Ray nodes.

The sweep: a grid of ``finetune`` trials (sensitivity mode over ``stage2_lr``: every trial runs
to full length and Tune starts as many at once as the resources allow), built with the
project's machinery (``SweepSpec`` -> ``build_tuner``). Trials/hour = trials / ``Tuner.fit()``
wall time, which includes starting the trial actors (with ``reuse_actors``) and every
trial's setup, as a user's sweep pays them.

- Packing, on a private local Ray with 2 CPUs: ``--cpus-per-trial 0.5`` (4 trials at once) vs 1
  (2 at once). Threads per trial follow the request (``num_threads = max(1, int(cpus))``, i.e.
  1 in both cases): at 0.5, four one-thread trials share two cores.
- Scaling, on a ``ray.cluster_utils.Cluster`` (real Ray nodes on this host, as in
  tests/test_cluster.py): a head node with no CPUs (the driver) plus one or two worker nodes of
  1 CPU each, one CPU per trial. Nodes of 1 CPU keep the 2-node case within this machine's two
  cores, so the ideal speed-up is 2x (nodes of 2 CPUs would oversubscribe the host).

Rounds alternate the two settings of each comparison (the second node is added and removed
between runs); medians. Embedded default (Spherical MNIST, EfficientNet-Lite0, a small training
subset); ``--quick``: the toy task on ``test_efficientnet``, 2 trials of 1 epoch.

    python -m bench.packing [--quick] [--no-record]
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.common import EMBEDDED, TOY, median, parser, private_ray, record, run_sweep, scratch_dir

# bench.common first: importing it sets the environment that ray reads when ray is imported.
# isort: split
from tuner.spec import SweepSpec

HOUR_S = 3600.0


def grid_spec(base: dict, tmp: Path, name: str, trials: int, epochs: int, train_samples: int,
              cpus_per_trial: float) -> SweepSpec:
    """``trials`` finetune trials of ``epochs`` stage-2 epochs, all to full length."""
    lrs = ",".join(f"{1e-3 * (1 + 0.25 * i):.6g}" for i in range(trials))  # distinct grid values
    return SweepSpec(method="finetune", data_dir=str(tmp / "data") if base is TOY else None,
                     max_epochs=epochs, max_train_samples=train_samples, cpus_per_trial=cpus_per_trial,
                     storage=str(tmp / "results"), name=name, sensitivity=f"stage2_lr={lrs}", **base)


def trials_per_hour(spec: SweepSpec) -> float:
    """Completed trials per hour of ``Tuner.fit()``.

    Raises:
        RuntimeError: not every trial of the grid completed.
    """
    run = run_sweep(spec)
    done = int((run.trials["status"] == "completed").sum())
    if done != run.resolved.expected_trials:
        raise RuntimeError(f"{spec.name}: {done} of {run.resolved.expected_trials} trials completed")
    return done / run.wall_s * HOUR_S


@contextlib.contextmanager
def simulated_cluster() -> Iterator[object]:
    """A head node with no CPUs (the driver) on a ``ray.cluster_utils.Cluster``; shut down after."""
    import ray
    from ray.cluster_utils import Cluster

    sim = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        yield sim
    finally:
        ray.shutdown()
        sim.shutdown()


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    rounds, trials, epochs, train_samples = (1, 2, 1, 64) if args.quick else (2, 8, 2, 384)
    base = TOY if args.quick else EMBEDDED
    packing = {0.5: [], 1.0: []}
    scaling = {1: [], 2: []}
    with scratch_dir("packing") as tmp:
        with private_ray(num_cpus=2):
            for r in range(rounds):
                for cpus in packing:
                    spec = grid_spec(base, tmp, f"pack-{cpus}-{r}", trials, epochs, train_samples, cpus)
                    packing[cpus].append(trials_per_hour(spec))
        import ray

        with simulated_cluster() as sim:
            sim.add_node(num_cpus=1)
            sim.wait_for_nodes()
            ray.init(address=sim.address)
            for r in range(rounds):
                for nodes in scaling:
                    if nodes == 2:
                        extra = sim.add_node(num_cpus=1)
                        sim.wait_for_nodes()
                    spec = grid_spec(base, tmp, f"nodes-{nodes}-{r}", trials, epochs, train_samples, 1.0)
                    scaling[nodes].append(trials_per_hour(spec))
                    if nodes == 2:
                        sim.remove_node(extra)
    pack = {cpus: median(v) for cpus, v in packing.items()}
    scale = {nodes: median(v) for nodes, v in scaling.items()}
    setup = "toy task, test_efficientnet" if args.quick else "Spherical MNIST, EfficientNet-Lite0"
    lines = [f"{setup}; a grid of {trials} finetune trials x {epochs} epochs on {train_samples} training samples, "
             f"1 thread per trial; median of {rounds} alternating rounds; trials/hour = trials / Tuner.fit() wall time",
             "", "| setting | trials/hour | runs |", "|---|---|---|"]
    lines += [f"| local Ray, 2 CPUs, {cpus:g} CPU per trial ({int(2 / cpus)} at once) | {pack[cpus]:.0f} | "
              f"{len(packing[cpus])} |" for cpus in packing]
    lines += [f"| simulated cluster, {nodes} node(s) x 1 CPU, 1 CPU per trial | {scale[nodes]:.0f} | "
              f"{len(scaling[nodes])} |" for nodes in scaling]
    lines += ["", f"- packing: 0.5 CPU per trial / 1 CPU per trial = {pack[0.5] / pack[1.0]:.2f}x trials/hour",
              f"- scaling: 2 nodes / 1 node = {scale[2] / scale[1]:.2f}x trials/hour (ideal 2x)"]
    record("Packing and node scaling: trials/hour", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
