"""Where trials run and where results go: attaching to Ray, and refusing requests that cannot work.

A sweep either starts a private local Ray or attaches to an existing cluster (``--address`` /
``$RAY_ADDRESS``). Before any trial starts we check what would otherwise fail late or hang:
a GPU or CPU request the cluster can never satisfy (trials would stay PENDING forever, DESIGN
§8) and a storage location that cannot be written or that other hosts cannot reach (Ray
syncs checkpoints and our Parquet store to it from every node).
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import ray

from tuner.store import filesystem

log = logging.getLogger(__name__)

# Filesystem types (as /proc/mounts names them) that every host of a cluster can share.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "cephfs", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "fuse.ceph", "9p", "afs",
})
MOUNTS_FILE = "/proc/mounts"


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Attach to ``address`` (or $RAY_ADDRESS) or start a private local Ray.

    The local instance stays on loopback only if ``tuner.sweep.LOOPBACK_ENV`` was in the
    environment before ``ray`` was imported (``tuner.sweep.main`` sees to that).

    Raises:
        ValueError: the cluster at ``address`` cannot be reached (with the usual causes).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
        return
    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ValueError(
            f"cannot attach to the Ray cluster at {address!r}: {str(e).splitlines()[0] if str(e) else e!r}. "
            "Is it running (ray status)? Ray 2.60 clusters started with `ray start` use token auth: "
            "set RAY_AUTH_MODE=token with the cluster's ~/.ray/auth_token on this machine."
        ) from e


def trial_slots(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials of this request the connected cluster runs at once (at least 1)."""
    have = ray.cluster_resources()
    slots = [have.get("CPU", 0) // cpus_per_trial] if cpus_per_trial > 0 else []
    if gpus_per_trial > 0:
        slots.append(have.get("GPU", 0) // gpus_per_trial)
    return max(1, int(min(slots))) if slots else 1


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse per-trial requests larger than the whole cluster (they would never be scheduled).

    Looks at the Ray cluster's resources, not at torch: logical GPUs declared by a node count.

    Raises:
        ValueError: naming the request and what the cluster has.
    """
    have = ray.cluster_resources()
    if gpus_per_trial > 0 and have.get("GPU", 0) < gpus_per_trial:
        raise ValueError(
            f"--gpus-per-trial {gpus_per_trial:g} asked for, but the Ray cluster has "
            f"{have.get('GPU', 0):g} GPUs: run with --gpus-per-trial 0 or attach to a GPU cluster (--address)."
        )
    if have.get("CPU", 0) < cpus_per_trial:
        raise ValueError(f"--cpus-per-trial {cpus_per_trial:g} exceeds the cluster's {have.get('CPU', 0):g} CPUs")


def cluster_hosts() -> set[str]:
    """Host names of the alive nodes of the connected Ray cluster."""
    return {n["NodeManagerHostname"] for n in ray.nodes() if n.get("Alive")}


def mount_fstype(path: str, mounts_file: str = MOUNTS_FILE) -> str:
    """The filesystem type of the mount holding ``path`` ("" if unknown, e.g. no /proc)."""
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return ""
    target, best, fstype = os.path.realpath(path), "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[2]
    return fstype


def check_storage_writable(storage: str) -> None:
    """Create ``storage`` and write then delete a small file there (before anything runs).

    Raises:
        ValueError: the location cannot be created or written (or the URI is not understood).
    """
    try:
        fs, root = filesystem(storage)
        fs.create_dir(root, recursive=True)
        probe = f"{root}/.write-probe-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, ValueError) as e:  # pyarrow: OSError for I/O, ArrowInvalid (ValueError) for a bad URI
        raise ValueError(f"--storage {storage} cannot be written: {e}") from e


def check_storage_shared(storage: str, hosts: set[str], mounts_file: str = MOUNTS_FILE) -> None:
    """Refuse a node-local storage path when the cluster spans several hosts.

    A local path is fine on one host (the simulated multi-node clusters of the tests included);
    across hosts it must be a shared mount (``NETWORK_FS_TYPES``) or a URI (s3://, gs://),
    since Ray writes checkpoints and we write the store from every node.

    Raises:
        ValueError: naming the filesystem type, the hosts and the fixes.
    """
    if "://" in storage or len(hosts) <= 1:
        return
    fstype = mount_fstype(_first_existing_parent(storage), mounts_file)
    if fstype not in NETWORK_FS_TYPES:
        raise ValueError(
            f"--storage {storage} is node-local ({fstype or 'unknown'} filesystem) but the Ray cluster "
            f"spans {len(hosts)} hosts ({', '.join(sorted(hosts))}): trials on other hosts could not "
            "write there. Use a shared mount (NFS, Lustre, ...) or a URI such as s3://bucket/path or "
            "gs://bucket/path."
        )


def _first_existing_parent(path: str) -> str:
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return str(p)
