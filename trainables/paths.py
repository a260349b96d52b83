"""The one place data paths come from."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "CROSSMODAL_DATA"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Directory holding benchmark files and generated caches.

    Order: the explicit value (the CLI's ``--data-dir``), then ``$CROSSMODAL_DATA``, then
    ``~/.cache/crossmodal-tune/data``.
    """
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser().resolve()
    return Path.home() / ".cache" / "crossmodal-tune" / "data"
