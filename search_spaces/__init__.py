"""Search spaces: one module-level define-by-run function per method (Optuna only, no torch).

Each ``space(trial, defaults)`` suggests values whose names equal the trial config keys and
returns constants as a dict. ``defaults`` is the task's stage-2 defaults (``lr`` ...); the
sweep binds it with ``functools.partial`` so the space stays picklable.
"""
