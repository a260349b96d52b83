"""``python -m tuner list tasks|methods|backbones``: what the registries hold."""
from __future__ import annotations

import sys

from trainables.registry import get_backbone, get_method, get_task, list_backbones, list_methods, list_tasks

USAGE = "usage: python -m tuner list {tasks,methods,backbones}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "list" or argv[1] not in ("tasks", "methods", "backbones"):
        print(USAGE, file=sys.stderr)
        return 2
    kind = argv[1]
    if kind == "tasks":
        for name in list_tasks():
            t = get_task(name)
            files = ", ".join(t.data_files) or "-"
            print(f"{name:12s} {t.modality} {t.output:14s} metric={t.metric:12s} files: {files}"
                  f"{'  (embedded variant: yes)' if t.has_mini else ''}")
    elif kind == "methods":
        for name in list_methods():
            print(f"{name:12s} {get_method(name).trainable.__name__}")
    else:
        for name in list_backbones():
            b = get_backbone(name)
            print(f"{name:40s} {b.modality} scale={b.scale}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
