"""Shared test setup: offline Hugging Face, Ray kept on loopback, a local Ray fixture.

The environment variables are set here, before anything imports Ray (Ray reads them at import
time); library code never sets environment variables.
"""
import os
from pathlib import Path

# No network in tests: Hugging Face must only look in its local cache.
os.environ["HF_HUB_OFFLINE"] = "1"
# With this set to 0 every Ray process binds 127.0.0.1 only (otherwise Ray rewrites localhost
# to the machine's eth0 address); see DESIGN.md §8.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Tiny trials checkpoint every ~0.1 s; Ray warns about the forced state snapshots each time.
os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] = "0"

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread, as every trial uses by default: with 2 threads on a 2-core machine that
# is busy elsewhere, torch's double backward was seen to stall for tens of seconds.
torch.set_num_threads(1)

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_local():
    """A private local Ray instance (2 CPUs, no dashboard) for one test module.

    ``address="local"`` always starts a new instance, never attaching to a cluster that someone
    started with ``ray start`` on this machine. Shut down with ``ray.shutdown()`` (never
    ``ray stop``, which kills every Ray process on the machine).
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError(
            "Ray is already initialised in this test process; a test started Ray without the "
            "ray_local fixture or did not shut it down. Use the ray_local fixture."
        )
    # Ray puts the driver's cwd (the repo root) on its workers' sys.path but not tests/, where
    # pytest imports test modules from (tests/ is not a package): add it, so that trainables
    # defined in test modules unpickle on the workers.
    pythonpath = os.pathsep.join(
        p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        yield ray
    finally:
        ray.shutdown()
