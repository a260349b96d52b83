"""``python -m tuner.analyze``: MoNA's analysis tools beside the sweeps (issue #9).

    python -m tuner.analyze discrepancy --task spherical [--backbone B] [--experiments 100000]
    python -m tuner.analyze distortion <experiment> [--storage results]

``discrepancy``: the approximate modality knowledge discrepancy of MoNA's Alg. 2 (§2.3,
Appendix A.4, Fig. 4) between a backbone's pretrained source model and a classification
task; prints D, I and the time taken, and writes the running minimum's curve as a PNG and
a CSV (``trainables.analysis.discrepancy``).

``distortion``: for every completed trial of an experiment, the linear-probe error on the
source surrogate of the trial's final encoder against the pretrained encoder's (MoNA §2.2,
Fig. 3; ``trainables.analysis.distortion``), written to the experiment's results store
(table ``distortion``); ``python -m tuner.plot distortion <experiment...>`` draws it.

The implementation is ``tuner.mona_analyses``, imported only after the flags are parsed (so
``--help`` answers at once). Both read the sweep's own machinery: the task and backbone registries, ``resolve_environment`` (scale
and backbone resolution), ``load_task``, ``create_source_model`` / ``build_model``, the
trials table (``config/<key>`` columns parsed by the method's ``TrialConfig``), and the
trials' checkpoints (``read_checkpoint`` of ``state.pt`` in Ray's
``<storage>/<experiment>/<Trainable>_<trial_id>/checkpoint_*/``, see
``tuner.experiment.trial_dirname``). The final encoder is the checkpoint's ``"model"``
state: for a completed trial, the best-validation weights it was tested with.
"""
from __future__ import annotations

import argparse
import logging
import sys

DEFAULT_EXPERIMENTS = 100_000
SPLITS = ("train", "test")
PROBE_MAX_SAMPLES = 5000  # ORCA's source-surrogate size


# CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.analyze", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    d = sub.add_parser("discrepancy", help="MoNA Alg. 2: modality knowledge discrepancy of a classification task")
    d.add_argument("--task", required=True, help="task name (python -m tuner list tasks)")
    d.add_argument("--backbone", default=None, help="2D backbone with a classifier (default: the scale's)")
    d.add_argument("--scale", default="auto", choices=("auto", "mini", "paper"))
    d.add_argument("--data-dir", default=None, help="data root (default $CROSSMODAL_DATA or ~/.cache/crossmodal-tune/data)")
    d.add_argument("--weights", default=None, help="pretrained weight file for the backbone")
    d.add_argument("--experiments", "-I", type=int, default=DEFAULT_EXPERIMENTS, help="random experiments I")
    d.add_argument("--split", default="train", choices=SPLITS, help="target data: published train or test split")
    d.add_argument("--max-samples", type=int, default=0,
                   help="seeded subset of the target data (0 = all; the logits at 224x224 dominate CPU time)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu", help="torch device for the source logits")
    d.add_argument("--out", default=None, help="output prefix for .csv/.png (default <task>-<backbone>-discrepancy)")
    s = sub.add_parser("distortion", help="MoNA Fig. 3: linear-probe error of each trial's encoder")
    s.add_argument("experiment")
    s.add_argument("--storage", default="results")
    s.add_argument("--data-dir", default=None, help="data root, if not the one the sweep used")
    s.add_argument("--max-samples", type=int, default=PROBE_MAX_SAMPLES, help="source-surrogate samples (0 = all)")
    s.add_argument("--seed", type=int, default=0, help="probe split and probe seed")
    s.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tuner import store
    from tuner.mona_analyses import discrepancy_summary, run_discrepancy, run_distortion, write_discrepancy

    try:
        if args.kind == "discrepancy":
            run = run_discrepancy(args.task, args.backbone, args.scale, args.data_dir, args.weights,
                                  args.experiments, args.seed, args.split, args.max_samples, args.device)
            csv, png = write_discrepancy(run, args.out or f"{run.task}-{run.backbone}-discrepancy")
            print(discrepancy_summary(run))
            print(f"wrote {csv} and {png}")
        else:
            rows = run_distortion(args.storage, args.experiment, args.data_dir, args.max_samples, args.seed,
                                  args.device)
            columns = ["trial_id", "method", "probe_error", "pretrained_probe_error", "distortion", "test_metric"]
            print(rows[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
            print(f"wrote {len(rows)} rows to the distortion table of {store.store_dir(args.storage, args.experiment)}")
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
