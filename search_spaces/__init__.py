"""Search spaces: one module-level define-by-run function per method (Optuna only, no torch).

Each ``space(trial, defaults)`` suggests values whose names equal the trial config keys and
returns constants as a dict. ``defaults`` is the task's stage-2 defaults (``lr`` ...); the
sweep binds it with ``functools.partial`` so the space stays picklable.

Each module also exports ``defaults(task_defaults) -> dict``: the value of every dimension
its space can suggest when that dimension is not being searched (sensitivity runs), and may
export ``ALIASES`` (user-facing name -> config key, e.g. ``lambda`` -> ``lam``).
"""
