"""Figure 3 of issue #8: one ORCA OTDD objective evaluation (forward + backward), source side
cached vs recomputed every call as the public ORCA code does.

Setup (ORCA's size): 5,000 source features x 128 target features, width 128, 10 source classes,
10 target classes; random Gaussian clouds with class-dependent means (seeded). Compares, in
interleaved rounds: exact OT (``emd``, our default) with a ``SourceCache``; debiased Sinkhorn
(ORCA's objective) with a cache; debiased Sinkhorn recomputing the source label distances and
self terms each call. Reports medians, the recompute/cached ratio, the values' relative
difference, and each time against ORCA's reference (~4.2 s per call on these machines).

    python -m bench.otdd_cache [--quick]
"""
from __future__ import annotations

import torch

from bench.common import interleaved, median, parser, record
from trainables.ot.otdd import SourceCache, otdd

ORCA_REFERENCE_S = 4.2  # public ORCA configuration, measured on these machines (issue #8)


def clouds(n: int, k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    means = torch.randn(k, d, generator=g)
    return means[y] + 0.5 * torch.randn(n, d, generator=g), y


def objective(x_s, y_s, x_t, y_t, solver: str, cache: SourceCache | None) -> float:
    x = x_t.clone().requires_grad_(True)
    value = otdd(x_s, y_s, x, y_t, solver=solver, cache=cache)
    value.backward()
    return float(value.detach())


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    n_source, repeats = (1000, 2) if args.quick else (5000, 5)
    torch.set_num_threads(1)
    x_s, y_s = clouds(n_source, 10, 128, seed=0)
    x_t, y_t = clouds(128, 10, 128, seed=1)
    emd_cache = SourceCache.build(x_s, y_s, "emd")
    sinkhorn_cache = SourceCache.build(x_s, y_s, "sinkhorn")
    runs = {
        "emd, cached": lambda: objective(x_s, y_s, x_t, y_t, "emd", emd_cache),
        "emd, recomputed": lambda: objective(x_s, y_s, x_t, y_t, "emd", None),
        "sinkhorn, cached": lambda: objective(x_s, y_s, x_t, y_t, "sinkhorn", sinkhorn_cache),
        "sinkhorn, recomputed": lambda: objective(x_s, y_s, x_t, y_t, "sinkhorn", None),
    }
    values = {name: fn() for name, fn in runs.items()}
    times = interleaved(runs, repeats, warmup=0)
    med = {name: median(t) for name, t in times.items()}
    lines = [f"{n_source} x 128 features of width 128, 10 classes each side; fwd+bwd, median of {repeats}",
             "", "| objective | s per call | x ORCA's ~4.2 s | value |", "|---|---|---|---|"]
    lines += [f"| {name} | {med[name]:.3f} | {med[name] / ORCA_REFERENCE_S:.3f} | {values[name]:.6f} |"
              for name in runs]
    for solver in ("emd", "sinkhorn"):
        a, b = values[f"{solver}, cached"], values[f"{solver}, recomputed"]
        speedup = med[f"{solver}, recomputed"] / med[f"{solver}, cached"]
        lines.append(f"- {solver}: recomputed / cached = {speedup:.1f}x; values differ by "
                     f"{abs(a - b) / max(abs(b), 1e-300):.1e} relative (target: >= 5x, <= 1e-6)")
    record("ORCA OTDD objective: cached source side vs recomputed", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
