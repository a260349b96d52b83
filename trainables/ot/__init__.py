"""Optimal transport for the stage-1 methods: the label-aware dataset distance (OTDD) that ORCA
minimises, written on top of POT's torch backend (``trainables.ot.otdd``).

Nothing is vendored: ORCA ships a modified copy of microsoft/otdd; we implement the part it
uses (exact label-to-label distances between class clouds and the label-augmented ground
cost) in a few functions, with the source side computed once and reused.
"""
