"""The paper-scale path on a GPU, for real: Swin-B at 224x224 (``--init random``: no hub weights
offline), MoNA's stage-1 meta-step vs a plain fine-tune step (time and peak GPU memory), and
trials/hour of the real sweep CLI at ``--gpus-per-trial 0.25`` (four trials share the GPU) vs 1
(one at a time), with each trial's GPU memory as ``nvidia-smi`` sees it.

Data: fake files in the published formats, written by ``make-data`` (seeded uniform random
pixels and labels; step times and memory do not depend on pixel values, accuracy does and is
not measured): NAS-Bench-360's ``s2_cifar100.gz`` (gzip pickle, ``{"train"|"test": {"images":
uint8 (N, 3, 60, 60), "labels": (N,)}}``) and CIFAR-10's python batches
``cifar-10-batches-py/data_batch_{1..5}`` (MoNA's stage-1 source surrogate for Swin).

Phases (``all`` runs them in order, each figure appended to ``OUT/gpu_paper_scale.json`` and
``.md`` as soon as it exists, so a run cut short keeps what it measured):

- ``steps`` (own process): every trainable built from its registered space's defaults at
  paper scale (``bench.common.trial_config``), outside Ray, on ``--device``; the steps are
  ``bench.method_step_cost``'s (plain: forward, task loss, backward over every parameter, AdamW;
  mona: ``meta_gradient`` + the embedder's AdamW step) on one target batch of ``--batch``
  (and a source batch of the space's ``source_batch_size``). Memory first, one trainable alive
  at a time: ``torch.cuda.max_memory_allocated`` over ``--mem-steps`` steps after a reset,
  against what was allocated before the first step (the model, its stem copy, data and
  optimiser state are resident then). Then time: all trainables built, ``--warmup`` rounds, then
  ``--repeats`` interleaved rounds, each step followed by ``torch.cuda.synchronize``; medians.
- ``sweeps``: ``python -m tuner.sweep --task spherical --method finetune --scale paper --init
  random --at-defaults --seeds S ...`` once per ``--gpus`` value (each in its own process; the
  CLI's ``main``, with ``tuner.experiment.run_experiment`` wrapped only to write
  ``Tuner.fit()``'s wall time, ``ExperimentRun.wall_s``, to a JSON file). Trials/hour = completed
  trials / that wall time (the command's whole wall time is reported beside it). A thread polls
  ``nvidia-smi`` every ``--poll-s`` s: per-process GPU memory (the trial actors; the driver holds
  no CUDA context), total memory used and utilisation.

    python -m bench.gpu_paper_scale make-data --data-dir D
    python -m bench.gpu_paper_scale all --data-dir D --out OUT [--device cuda] [--gpus 1,0.25]
    python -m bench.gpu_paper_scale all --cpu-smoke --data-dir D --out OUT   # CPU check of the script

``--cpu-smoke`` runs every phase on the CPU in ~2 min (``test_swin``, a tiny Swin at 224x224,
batch 2, ``--gpus 0``): it checks the script, not the figures. Defaults (``all``: ~4.5 min on an
H200): 1,200 / 256 fake spherical samples, 1,000 fake CIFAR-10 source images, batch 32, 10 timed
rounds; sweeps of 4 seeds x 2 epochs x 1,024 training samples, 3 CPUs per trial.

On a GPU machine with no registry access and no ray/optuna (run 2026-12-04 on an H200, see
RESULTS.md): carry cp312 wheels of optuna, alembic, Mako, SQLAlchemy, colorlog, pydantic,
pydantic-core, annotated-types, typing-inspection, typing-extensions, jsonschema,
jsonschema-specifications, referencing, rpds-py and tensorboardX (``pip download --no-deps
--only-binary=:all: --python-version 3.12 ...``) plus the ray 2.60 cp312 wheel unpacked minus
``ray/{jars,rllib,llm,serve}`` (79 MB -> 31 MB as .tar.xz), install them with ``pip install
--no-index --no-deps --target /tmp/site`` (ray: ``tar xJf ... -C /tmp/site``), then
``PYTHONPATH=/tmp/site:$PWD python3 -m bench.gpu_paper_scale all --data-dir /tmp/d --out $OUT
--storage /tmp/s``. POT, aeon, mlxtend and the two embedded-model packages are not imported on
this path.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# bench.common first: importing it sets the environment that ray reads when ray is imported.
from bench.common import machine, median

import numpy as np

HOUR_S = 3600.0
SPHERICAL_FILE = "s2_cifar100.gz"
CIFAR10_DIR = "cifar-10-batches-py"
PAPER = dict(task="spherical", scale="paper", init="random")  # the paper backbone: Swin-B, 224x224
MODES = ("plain", "mona exact", "mona jvp", "mona finite_difference")


# ---- fake data in the published formats ---------------------------------------------------------
def write_fake_data(root: Path, n_train: int, n_test: int, source_per_batch: int, seed: int = 0) -> dict:
    """``s2_cifar100.gz`` and ``cifar-10-batches-py/data_batch_{1..5}``: seeded random uint8 pixels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    dataset = {split: {"images": rng.integers(0, 256, (n, 3, 60, 60), dtype=np.uint8),
                       "labels": rng.integers(0, 100, n).astype(np.int64)}
               for split, n in (("train", n_train), ("test", n_test))}
    with gzip.open(root / SPHERICAL_FILE, "wb", compresslevel=1) as f:
        pickle.dump(dataset, f, protocol=4)
    folder = root / CIFAR10_DIR
    folder.mkdir(exist_ok=True)
    for i in range(1, 6):
        batch = {b"batch_label": f"training batch {i} of 5".encode(),
                 b"labels": [int(v) for v in rng.integers(0, 10, source_per_batch)],
                 b"data": rng.integers(0, 256, (source_per_batch, 3 * 32 * 32), dtype=np.uint8),
                 b"filenames": [f"img_{i}_{k}.png".encode() for k in range(source_per_batch)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    return {"s2_cifar100.gz": {"train": n_train, "test": n_test}, "cifar10_source": 5 * source_per_batch}


# ---- results ---------------------------------------------------------------------------------------
class Results:
    """``OUT/gpu_paper_scale.json`` (every figure) and ``.md`` (the tables), rewritten on each update."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / "gpu_paper_scale.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def update(self, key: str, value) -> None:
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "gpu_paper_scale.md").write_text("\n".join(markdown(self.data)) + "\n")


def markdown(d: dict) -> list[str]:
    lines = []
    if "env" in d:
        e = d["env"]
        lines += [f"_{e['machine']}; GPU: {e.get('gpu', '?')}; torch {e.get('torch', '?')}_", ""]
    if "steps" in d:
        s = d["steps"]
        lines += [f"Step cost: {s['setup']}; median of {s['repeats']} interleaved rounds after {s['warmup']} "
                  "warm-up, each step synchronised", "",
                  "| step | s per step | x plain | peak GPU memory over the step (GiB) | resident before (GiB) | "
                  "step's extra (GiB) |", "|---|---|---|---|---|---|"]
        plain = s["time_s"].get("plain")
        for mode in s["modes"]:
            t, m = s["time_s"].get(mode), s["memory"].get(mode, {})
            ratio = f"{t / plain:.2f}" if t and plain else "—"
            cells = [f"{m[k] / 2**30:.2f}" if isinstance(m.get(k), (int, float)) else "—"
                     for k in ("peak_bytes", "before_bytes", "extra_bytes")]
            lines.append(f"| {mode} | {t:.4f} | {ratio} | {' | '.join(cells)} |" if t else
                         f"| {mode} | — ({s['errors'].get(mode, 'not run')}) | — | {' | '.join(cells)} |")
        lines.append("")
    if "sweeps" in d:
        lines += ["Trials/hour, real CLI (`python -m tuner.sweep ... --at-defaults`), finetune:", "",
                  "| --gpus-per-trial | trials completed | Tuner.fit() s | trials/hour | command s | "
                  "max trials on GPU at once | GPU memory per trial, peak (MiB) | GPU memory used, peak (MiB) | "
                  "GPU util mean (%) |", "|---|---|---|---|---|---|---|---|---|"]
        for g, r in d["sweeps"].items():
            if "error" in r and "fit_wall_s" not in r:
                lines.append(f"| {g} | — ({r['error'][:200]}) | | | | | | | |")
                continue
            smi = r.get("nvidia_smi", {})
            per = smi.get("per_process_peak_mib") or []
            lines.append(f"| {g} | {r.get('completed')} of {r.get('trials')} | {r.get('fit_wall_s', float('nan')):.1f} | "
                         f"{r.get('trials_per_hour', float('nan')):.1f} | {r['command_s']:.1f} | "
                         f"{smi.get('max_processes', '—')} | {', '.join(str(p) for p in per) or '—'} | "
                         f"{smi.get('peak_used_mib', '—')} | {smi.get('mean_util_pct', '—')} |")
        rates = {g: r.get("trials_per_hour") for g, r in d["sweeps"].items() if r.get("trials_per_hour")}
        if "0.25" in rates and "1" in rates:
            lines += ["", f"- trials/hour at 0.25 GPU per trial / at 1: {rates['0.25'] / rates['1']:.2f}x"]
        if "sweep_args" in d:
            lines += ["", f"Command: `python -m tuner.sweep {' '.join(d['sweep_args'])} --gpus-per-trial G "
                          "--storage S --name N`"]
        lines.append("")
    return lines


# ---- steps -----------------------------------------------------------------------------------------
def run_steps(args, results: Results) -> None:
    """Time and peak memory of a plain step and MoNA's meta-steps (see the module docstring)."""
    import torch

    from bench import method_step_cost as msc
    from trainables import base
    from trainables.mona import MetaBatch

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    base.TwoStageTrainable.trial_device = lambda self: device  # outside Ray: no GPU ids to read
    torch.set_num_threads(args.threads)
    if cuda:
        torch.cuda.init()
    spec = dict(PAPER, backbone=args.backbone) if args.backbone else dict(PAPER)
    overrides = {"batch_size": args.batch, "num_threads": args.threads}

    def build(mode: str):
        method, extra = ("finetune", {}) if mode == "plain" else ("mona", {"meta_grad": mode.split()[1]})
        t = msc.build(method, spec, str(args.data_dir), **overrides, **extra)
        t.set_train_mode()
        x = t.train_x[:args.batch].to(device)
        y = t.train_y[:args.batch].to(device)
        if mode == "plain":
            return t, (lambda: msc.plain_step(t, x, y))
        batch = MetaBatch(x, y, *t.source_batch(t.cfg.source_batch_size))
        return t, (lambda: msc.mona_step(t, batch))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    out = {"setup": "", "modes": list(MODES), "batch": args.batch, "warmup": args.warmup,
           "repeats": args.repeats, "memory": {}, "time_s": {}, "errors": {}}
    # memory: one trainable alive at a time
    for mode in MODES:
        t = None
        try:
            start = time.perf_counter()
            t, fn = build(mode)
            built_s = time.perf_counter() - start
            if not out["setup"]:
                shape = tuple(t.data.input_shape)
                tf32 = torch.backends.cuda.matmul.allow_tf32
                out["setup"] = (f"spherical (fake data, published format), input {shape} -> {t.cfg.backbone} "
                                f"(random init) at 224x224, batch {args.batch}, device {device.type}, fp32 "
                                f"(TF32 matmul {'on' if tf32 else 'off'}), {args.threads} CPU threads")
                out["config"] = {k: v for k, v in t.config.items() if k not in ("data_root",)}
            fn()  # first step: optimiser state created, kernels chosen
            sync()
            if cuda:
                torch.cuda.empty_cache()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            for _ in range(args.mem_steps):
                fn()
            sync()
            mem = {"build_s": built_s}
            if cuda:
                peak = torch.cuda.max_memory_allocated()
                mem.update(before_bytes=before, peak_bytes=peak, extra_bytes=peak - before,
                           reserved_peak_bytes=torch.cuda.max_memory_reserved())
            if mode != "plain":
                mem["source_batch_size"] = t.cfg.source_batch_size
            out["memory"][mode] = mem
            print(f"[steps] memory {mode}: {mem}", flush=True)
        except Exception as e:  # noqa: BLE001 - one mode failing (e.g. out of memory) must not end the run
            out["errors"][mode] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            print(f"[steps] {mode} failed: {out['errors'][mode]}", flush=True)
        finally:
            del t
            fn = None
            if cuda:
                torch.cuda.empty_cache()
        results.update("steps", out)
    # time: every working mode built at once, interleaved rounds
    fns = {}
    for mode in MODES:
        if mode in out["errors"]:
            continue
        _, fn = build(mode)
        fns[mode] = fn
    times = {m: [] for m in fns}
    for _ in range(args.warmup):
        for fn in fns.values():
            fn()
            sync()
    for r in range(args.repeats):
        for mode, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[mode].append(time.perf_counter() - start)
        print(f"[steps] round {r + 1}/{args.repeats}: " + ", ".join(f"{m} {v[-1]:.4f}" for m, v in times.items()),
              flush=True)
    out["time_s"] = {m: median(v) for m, v in times.items()}
    out["time_all_s"] = times
    results.update("steps", out)


# ---- sweeps ----------------------------------------------------------------------------------------
class SmiPoller:
    """``nvidia-smi`` every ``interval`` s in a thread: per-process and total GPU memory, utilisation."""

    def __init__(self, interval: float):
        self.interval, self.samples, self.stop_event = interval, [], threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _query(self, what: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", f"--query-{what}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return [[c.strip() for c in line.split(",")] for line in out.strip().splitlines() if line.strip()]

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                apps = self._query("compute-apps=pid,used_memory")
                gpu = self._query("gpu=memory.used,utilization.gpu")
                self.samples.append({"t": time.time(), "apps": {a[0]: float(a[1]) for a in apps if len(a) == 2
                                                                and a[1].replace(".", "").isdigit()},
                                     "used": float(gpu[0][0]), "util": float(gpu[0][1])})
            except Exception as e:  # noqa: BLE001 - a failed poll is skipped
                self.samples.append({"t": time.time(), "error": str(e)[:200]})
            self.stop_event.wait(self.interval)

    def __enter__(self):
        if self.available:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        if self.available:
            self.thread.join(timeout=15)

    def summary(self) -> dict:
        ok = [s for s in self.samples if "used" in s]
        if not ok:
            return {"available": self.available, "polls": len(self.samples)}
        per_pid: dict[str, float] = {}
        for s in ok:
            for pid, mib in s["apps"].items():
                per_pid[pid] = max(per_pid.get(pid, 0.0), mib)
        busy = [s["util"] for s in ok if s["apps"]]
        return {"available": True, "polls": len(ok), "interval_s": self.interval,
                "per_process_peak_mib": sorted((int(v) for v in per_pid.values()), reverse=True),
                "processes_seen": len(per_pid), "max_processes": max(len(s["apps"]) for s in ok),
                "peak_used_mib": int(max(s["used"] for s in ok)),
                "mean_util_pct": round(sum(busy) / len(busy), 1) if busy else None,
                "peak_sum_of_processes_mib": int(max(sum(s["apps"].values()) for s in ok))}


def sweep_args(args) -> list[str]:
    return ["--task", "spherical", "--method", "finetune", "--scale", "paper", "--init", "random",
            "--at-defaults", "--seeds", str(args.seeds), "--max-epochs", str(args.max_epochs),
            "--max-train-samples", str(args.max_train_samples), "--cpus-per-trial", str(args.cpus_per_trial),
            "--data-dir", str(args.data_dir)] + (["--backbone", args.backbone] if args.backbone else [])


def ray_gpu_count() -> int | None:
    """How many GPUs a local Ray would detect here (NVML), or None if that cannot be asked."""
    try:
        from ray._private.accelerators import NvidiaGPUAcceleratorManager

        return int(NvidiaGPUAcceleratorManager.get_current_node_num_accelerators())
    except Exception as e:  # noqa: BLE001
        print(f"[sweeps] cannot ask Ray for its GPU count: {e}", flush=True)
        return None


def run_sweeps(args, results: Results) -> None:
    if args.device == "cuda":
        detected = ray_gpu_count()
        print(f"[sweeps] Ray detects {detected} GPU(s)", flush=True)
        if not detected:  # declare the one torch sees, so the sweeps can run at all (reported)
            os.environ["RAY_OVERRIDE_RESOURCES"] = json.dumps({"GPU": 1})
            print("[sweeps] RAY_OVERRIDE_RESOURCES={\"GPU\": 1}", flush=True)
        results.update("ray_detected_gpus", detected)
    storage = Path(args.storage).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    results.update("sweep_args", sweep_args(args))
    done = {}
    for g in args.gpus.split(","):
        name = f"gpu{g.replace('.', 'p')}-{time.strftime('%H%M%S')}"
        fit_json = storage / f"{name}.json"
        cmd = [sys.executable, "-m", "bench.gpu_paper_scale", "cli", "--fit-json", str(fit_json), "--",
               *sweep_args(args), "--gpus-per-trial", g, "--storage", str(storage), "--name", name]
        print(f"[sweeps] {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        with SmiPoller(args.poll_s) as poller:
            proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: Ray's processes too
            try:
                rc = proc.wait(timeout=args.sweep_timeout_s)
            except subprocess.TimeoutExpired:
                rc = "timeout"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
        entry = {"command_s": time.perf_counter() - start, "returncode": rc,
                 "nvidia_smi": poller.summary()}
        if fit_json.exists():
            fit = json.loads(fit_json.read_text())
            entry.update(fit)
            entry["trials_per_hour"] = fit["completed"] / fit["fit_wall_s"] * HOUR_S if fit["completed"] else 0.0
        else:
            entry["error"] = f"no Tuner.fit() result (exit code {rc})"
        done[g] = entry
        print(f"[sweeps] {g}: {json.dumps(entry, default=str)[:1500]}", flush=True)
        results.update("sweeps", done)


def cli(argv: list[str], fit_json: str) -> int:
    """``tuner.sweep.main(argv)``, writing ``Tuner.fit()``'s wall time and the trials to ``fit_json``."""
    from tuner import sweep

    sweep.set_driver_env(None, False)  # before tuner.experiment imports ray, as main() would
    from tuner import experiment

    real = experiment.run_experiment

    def recorded(*a, **k):
        run = real(*a, **k)
        trials = run.trials
        timing = [c for c in trials.columns if "time" in c or c.endswith("_s")]
        Path(fit_json).write_text(json.dumps({
            "fit_wall_s": run.wall_s, "trials": int(len(trials)),
            "completed": int((trials["status"] == "completed").sum()),
            "statuses": trials["status"].value_counts().to_dict(),
            "per_trial": trials[["trial_id", "status", *timing]].to_dict(orient="records"),
            "errors": [str(e)[-500:] for e in trials.get("error", []) if isinstance(e, str) and e],
        }, default=str))
        return run

    experiment.run_experiment = recorded
    return sweep.main(argv)


# ---- main ------------------------------------------------------------------------------------------
def environment(device: str) -> dict:
    env = {"machine": machine(), "python": platform.python_version()}
    with contextlib.suppress(Exception):
        import torch

        env["torch"] = torch.__version__
        if device == "cuda" and torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            env["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB"
    with contextlib.suppress(Exception):
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                            "--format=csv,noheader"], capture_output=True, text=True,
                                           timeout=10).stdout.strip()
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cli"]:  # internal: cli --fit-json FILE -- SWEEP-ARGS...
        if len(argv) < 4 or argv[1] != "--fit-json" or argv[3] != "--":
            raise SystemExit("usage: python -m bench.gpu_paper_scale cli --fit-json FILE -- SWEEP-ARGS...")
        return cli(argv[4:], argv[2])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("phase", choices=("make-data", "steps", "sweeps", "all"))
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("gpu_paper_scale_out"))
    p.add_argument("--cpu-smoke", action="store_true",
                   help="check the script on a CPU: tiny sizes, --device cpu, --gpus 0")
    p.add_argument("--device", default="cuda")
    p.add_argument("--backbone", default=None, help="default: the paper scale's 2D backbone (Swin-B)")
    p.add_argument("--n-train", type=int, default=1200)
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--source-per-batch", type=int, default=200, help="CIFAR-10 images per fake batch (x5)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--mem-steps", type=int, default=2)
    p.add_argument("--gpus", default="1,0.25", help="--gpus-per-trial values, run in this order")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--max-epochs", type=int, default=2)
    p.add_argument("--max-train-samples", type=int, default=1024)
    p.add_argument("--cpus-per-trial", type=float, default=3)
    p.add_argument("--storage", default=None, help="default: OUT/../gpu_paper_scale_storage")
    p.add_argument("--poll-s", type=float, default=0.5)
    p.add_argument("--sweep-timeout-s", type=float, default=150)
    p.add_argument("--steps-timeout-s", type=float, default=180)
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.gpus, args.batch, args.repeats, args.warmup, args.mem_steps = "cpu", "0", 2, 1, 1, 1
        args.backbone = args.backbone or "test_swin"  # a tiny Swin at 224x224: the same code path, fast
        args.n_train, args.n_test, args.source_per_batch, args.seeds = 24, 8, 8, 2
        args.max_train_samples, args.cpus_per_trial, args.threads = 8, 1, 2
    args.out.mkdir(parents=True, exist_ok=True)
    args.storage = args.storage or str(args.out.resolve().parent / "gpu_paper_scale_storage")
    results = Results(args.out)
    if args.phase in ("make-data", "all"):
        start = time.perf_counter()
        sizes = write_fake_data(args.data_dir, args.n_train, args.n_test, args.source_per_batch)
        print(f"[data] {sizes} in {time.perf_counter() - start:.1f} s -> {args.data_dir}", flush=True)
        if args.phase == "make-data":
            return 0
        results.update("env", environment(args.device))
        results.update("fake_data", sizes)
    if args.phase == "steps":
        run_steps(args, results)
    elif args.phase == "all":  # steps in their own process: its GPU memory is freed before the sweeps
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "bench.gpu_paper_scale", "steps", *[a for a in argv if a != "all"]]
        try:
            rc = subprocess.run(cmd, check=False, timeout=args.steps_timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"[steps] exit {rc} after {time.perf_counter() - start:.1f} s", flush=True)
    if args.phase in ("sweeps", "all"):
        run_sweeps(args, results)
    print("\n".join(markdown(json.loads(results.path.read_text()))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
