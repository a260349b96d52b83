"""Search spaces: one module-level define-by-run function per method (Optuna only, no torch).

Each ``space(trial, defaults)`` suggests values whose names equal the trial config keys and
returns constants as a dict. ``defaults`` (``tuner.spec.space_defaults``) is the task's
stage-2 defaults at the sweep's scale (``lr``, ``weight_decay``, ``epochs`` ...) plus ``task``,
``modality`` and ``scale``; the sweep binds it with ``functools.partial`` so the space stays
picklable.

Each module also exports
- ``defaults(task_defaults) -> dict``: the value of every dimension its space can suggest when
  that dimension is not being searched (sensitivity runs, ``tuner.compare``-style runs);
- ``paper_settings(task_defaults) -> dict``: at paper scale, the papers' value of every
  dimension the papers fix (MoNA §A.1, ORCA's and PaRe's public configs, Tables 9 and 11);
  {} at the embedded default. At paper scale ``defaults()`` returns exactly these values and
  the space's ranges contain them (``tests/test_paper_spaces.py``);
- optionally ``ALIASES`` (user-facing name -> config key, e.g. ``lambda`` -> ``lam``).
Paper scale and the embedded default may search different ranges: the embedded default is
sized for a CPU.
"""
