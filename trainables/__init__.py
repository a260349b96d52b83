"""Trainables, models, tasks and losses of crossmodal-tune.

Importing this package has no side effects; ``trainables.registry`` imports the
registering modules on first lookup. This package never imports ``tuner``.
"""
