"""Errors raised for user input: each message says what is wrong, the value, and the fix."""


class DataError(ValueError):
    """A data file is missing, malformed or of the wrong shape."""


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


class CheckpointError(ValueError):
    """A checkpoint is corrupt, truncated or holds more than tensors and plain data."""
