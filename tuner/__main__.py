"""``python -m tuner``: the commands, and ``list tasks|methods|backbones`` (what the registries hold).

``python -m tuner <command> ...`` runs ``python -m tuner.<command> ...``; each command imports
its own dependencies only when it runs, so ``--help`` answers at once.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "sweep": "run a hyperparameter sweep of one method on one task (Ray Tune: TPE + ASHA, or a grid)",
    "compare": "methods side by side on one task at their defaults over seeds, with paired tests",
    "report": "a table per experiment from the results store (best configuration, test metric, CI)",
    "plot": "figures from the results store (sensitivity, curves, slice, distortion)",
    "analyze": "MoNA's analyses: modality knowledge discrepancy, source-knowledge distortion",
    "list": "what the registries hold: python -m tuner list tasks|methods|backbones",
}
KINDS = ("tasks", "methods", "backbones")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m tuner <command> [args]   (python -m tuner.<command> --help for its flags)", "",
             "commands:"]
    lines += [f"  {name:{width}s}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def list_registry(kind: str) -> int:
    from trainables.registry import get_backbone, get_method, get_task, list_backbones, list_methods, list_tasks

    if kind == "tasks":
        for name in list_tasks():
            t = get_task(name)
            files = ", ".join(t.data_files) or "-"
            print(f"{name:12s} {t.modality} {t.output:14s} metric={t.metric:12s} files: {files}"
                  f"{'  (embedded variant: yes)' if t.has_mini else ''}")
    elif kind == "methods":
        for name in list_methods():
            print(f"{name:12s} {get_method(name).trainable_path}")
    else:
        for name in list_backbones():
            b = get_backbone(name)
            print(f"{name:40s} {b.modality} scale={b.scale}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "list":
        if len(rest) != 1 or rest[0] not in KINDS:
            print(f"usage: python -m tuner list {{{','.join(KINDS)}}}", file=sys.stderr)
            return 2
        return list_registry(rest[0])
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(f"tuner.{command}").main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
