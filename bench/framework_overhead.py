"""Figure 1 of issue #8: training throughput inside a Ray Tune trial vs a bare PyTorch loop.

Both sides train the same model on the same samples with the same batch size, optimiser (AdamW,
the task's lr and weight decay, cosine schedule) and one thread:

- tune: a one-trial sweep of ``finetune`` built by the project's own machinery (``SweepSpec`` ->
  ``build_tuner``, a private local Ray from ``tuner.cluster.start_ray``), run for ``E`` stage-2
  epochs; the first epoch of each run is a warm-up and dropped. Three figures per epoch, all
  read back from the Parquet store: the trainable's ``samples_per_s`` (its training loop
  alone), samples / ``time_this_iter_s`` (the whole ``step()``: training + validation pass +
  result), and samples / the driver-side interval between consecutive results (``written_at``
  of the store rows: adds Tune's checkpoint, result handling and the store's writes).
- bare: a hand-written loop (shuffle, forward, loss, backward, step) in the driver process over
  the same model and training subset, built by the method's Trainable outside Ray (so the
  architecture, initialisation and data cannot differ), one epoch at a time.

Rounds alternate bare and tune (``E - 1`` bare epochs, then one tune run); medians over every
measured epoch; the figure is tune / bare. Target: >= 0.95.

Both sides also count their loop's thread CPU seconds (the trial through ``CpuTimedFinetune``,
the registered Trainable plus two clock reads): samples per CPU second equal on both sides
means the same work was done, and a wall-clock gap is CPU share lost to other processes.

Embedded default (Spherical MNIST 1x32x32, EfficientNet-Lite0, 1,500 training samples, batch
64); ``--quick``: the toy task on the tiny random ``test_efficientnet``.

    python -m bench.framework_overhead [--quick] [--no-record]
"""
from __future__ import annotations

import time

from bench.common import EMBEDDED, TOY, median, parser, private_ray, record, run_sweep, scratch_dir

# bench.common first: importing it sets the environment that ray reads when ray is imported.
# isort: split
import torch

from trainables.finetune import FinetuneTrainable
from trainables.registry import get_method
from tuner.spec import SweepSpec

METHOD = "finetune"


class CpuTimedFinetune(FinetuneTrainable):
    """The registered ``finetune`` Trainable, also reporting its training loop's CPU seconds.

    Thread CPU time counts what the loop computed, not how long it waited for a core: with the
    wall-clock figures it separates extra work from lost CPU share (other processes on the
    shared cores, Ray's own included). Two clock reads per epoch; nothing else changes.
    """

    loss_part_keys = ("train_cpu_s",)

    def train_epoch(self) -> dict:
        start = time.thread_time()
        parts = super().train_epoch()
        return {**parts, "train_cpu_s": time.thread_time() - start}


def bare_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, loss_fn,
               optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator) -> tuple[float, float]:
    """One shuffled epoch of plain training; returns (samples per wall second, per CPU second)."""
    start, cpu_start = time.perf_counter(), time.thread_time()
    model.train()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        loss = loss_fn(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return len(x) / (time.perf_counter() - start), len(x) / (time.thread_time() - cpu_start)


class BareLoop:
    """The driver-side side of the comparison: the trial's model and data, a hand-written loop."""

    def __init__(self, config: dict, epochs_per_round: int):
        t = get_method(METHOD).trainable(config=config)  # builds model + subset; trains nothing
        self.model, self.x, self.y, self.loss_fn = t.model, t.train_x, t.train_y, t.loss_fn
        self.batch_size = config["batch_size"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config["stage2_lr"], weight_decay=config["stage2_weight_decay"])
        steps = -(-len(self.x) // self.batch_size) * epochs_per_round
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps)
        self.generator = torch.Generator().manual_seed(config["seed"])

    def epoch(self) -> tuple[float, float]:
        return bare_epoch(self.model, self.x, self.y, self.batch_size, self.loss_fn, self.optimizer,
                          self.scheduler, self.generator)


def tune_epochs(spec: SweepSpec, samples: int) -> dict[str, list[float]]:
    """One one-trial sweep; per measured epoch (the first dropped): the four throughputs."""
    run = run_sweep(spec, trainable=CpuTimedFinetune)
    h = run.history.sort_values("iteration")
    if len(h) != spec.max_epochs:
        raise RuntimeError(f"expected {spec.max_epochs} results, got {len(h)}")
    interval_s = h["written_at"].diff().dt.total_seconds()  # driver-side time between consecutive results
    measured = h.iloc[1:]
    return {"train": measured["samples_per_s"].tolist(),
            "step": (samples / measured["time_this_iter_s"]).tolist(),
            "driver": (samples / interval_s.iloc[1:]).tolist(),
            "train_cpu": (samples / measured["train_cpu_s"]).tolist()}


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    torch.set_num_threads(1)
    rounds, epochs = (1, 2) if args.quick else (4, 3)
    base = TOY if args.quick else EMBEDDED
    tune = {"train": [], "step": [], "driver": [], "train_cpu": []}
    bare, bare_cpu = [], []
    with scratch_dir("overhead") as tmp, private_ray(num_cpus=2):
        data_dir = str(tmp / "data") if args.quick else None
        common = dict(method=METHOD, data_dir=data_dir, num_samples=1, max_epochs=epochs, grace_period=epochs,
                      cpus_per_trial=1, storage=str(tmp / "results"), seed=0, **base)
        resolved = SweepSpec(**common).resolve()
        config = {**resolved.trial_constants(), "stage2_lr": resolved.defaults["lr"],
                  "stage2_weight_decay": resolved.defaults["weight_decay"]}
        fixed = (f"stage2_lr={config['stage2_lr']}", f"stage2_weight_decay={config['stage2_weight_decay']}")
        loop = BareLoop(config, epochs_per_round=rounds * (epochs - 1) + 1)
        loop.epoch()  # warm-up, as the tune side drops its first epoch
        for r in range(rounds):
            for _ in range(epochs - 1):
                wall, cpu = loop.epoch()
                bare.append(wall)
                bare_cpu.append(cpu)
            for key, values in tune_epochs(SweepSpec(**common, name=f"round{r}", fixed=fixed), len(loop.x)).items():
                tune[key] += values
    b, b_cpu = median(bare), median(bare_cpu)
    setup = ("toy task, test_efficientnet" if args.quick
             else "Spherical MNIST 1x32x32, EfficientNet-Lite0 (pretrained)")
    lines = [f"{setup}; {len(loop.x)} training samples, batch {loop.batch_size}, 1 thread, AdamW; "
             f"{rounds} rounds of {epochs - 1} bare epochs + a {epochs}-epoch one-trial sweep (first epoch dropped)",
             "", "| measured | samples/s (median) | epochs | / bare |", "|---|---|---|---|",
             f"| bare loop in the driver | {b:.1f} | {len(bare)} | 1.000 |"]
    labels = {"train": "Tune trial: trainable's samples_per_s (training loop)",
              "step": "Tune trial: samples / time_this_iter_s (train + validation)",
              "driver": "Tune trial: samples / driver-seen result interval (+ checkpoint, store)"}
    for key, label in labels.items():
        lines.append(f"| {label} | {median(tune[key]):.1f} | {len(tune[key])} | {median(tune[key]) / b:.3f} |")
    lines += [f"| bare loop, per CPU second of its thread | {b_cpu:.1f} | {len(bare_cpu)} | - |",
              f"| Tune trial's training loop, per CPU second of its thread | {median(tune['train_cpu']):.1f} | "
              f"{len(tune['train_cpu'])} | - |",
              "", f"- framework overhead: Tune training throughput / bare = {median(tune['train']) / b:.3f} "
              f"(target: >= 0.95); whole step {median(tune['step']) / b:.3f}; "
              f"driver-seen {median(tune['driver']) / b:.3f}",
              f"- same per CPU second (work done, not CPU share obtained): "
              f"{median(tune['train_cpu']) / b_cpu:.3f}"]
    record("Framework overhead: a Tune trial's epoch vs a bare PyTorch loop", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
