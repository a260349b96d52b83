"""Bad input: one clear line on stderr, a non-zero exit, no traceback (``--debug`` shows it),
and nothing already stored is touched. One test per kind of input."""
from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest
import torch
from trial_configs import sample_config

from trainables.base import CHECKPOINT_FILE
from trainables.errors import CheckpointError
from trainables.registry import get_method
from tuner.spec import SweepSpec
from tuner.sweep import main

SPHERICAL = ["--task", "spherical", "--method", "finetune"]
TOY = ["--task", "test_toy_task", "--method", "finetune", "--backbone", "test_efficientnet", "--init", "random",
       "--scale", "mini"]


def _refused(argv, capsys, message: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _snapshot(root) -> dict:
    """Every file under ``root`` with its size and modification time."""
    return {os.path.join(d, f): (os.path.getsize(os.path.join(d, f)), os.path.getmtime(os.path.join(d, f)))
            for d, _, files in os.walk(root) for f in files}


def _write_s2(path, images: np.ndarray, labels: np.ndarray) -> None:
    split = {"images": images, "labels": labels}
    with gzip.open(path, "wb") as f:
        pickle.dump({"train": split, "test": split}, f)


@pytest.mark.parametrize("argv,message", [
    (["--task", "spherial", "--method", "finetune"], "Did you mean 'spherical'"),
    (["--task", "spherical", "--method", "mnoa"], "Did you mean 'mona'"),
    ([*SPHERICAL, "--backbone", "swin_b"], "Unknown backbone 'swin_b'"),
    ([*SPHERICAL, "--set", "lamda=0.5"], "--set 'lamda': not a dimension"),
    (["--task", "spherical", "--method", "mona", "--sensitivity", "lambda=0,x"], "expected a float"),
    ([*SPHERICAL, "--num-samples", "0"], "--num-samples is out of range"),
    ([*SPHERICAL, "--weights", "/nonexistent.pth"], "no such file"),
    (["--task", "spherical", "--method", "mona", "--set", "inner_steps=4"],
     "--set inner_steps=4: inner_steps is searched as one of (1, 2, 3, 5)"),
    (["--task", "spherical", "--method", "mona", "--sensitivity", "stage2_lr=0,0.001"],
     "stage2_lr is searched on a log scale (log-uniform [0.0001, 0.01]); it must be > 0"),
])
def test_unknown_names_dimensions_and_values(argv, message, capsys, tmp_path):
    _refused(argv + ["--data-dir", str(tmp_path)], capsys, message)


def test_sensitivity_without_values_lists_every_dimension_with_default_and_range(capsys, tmp_path):
    assert main(["--task", "spherical", "--method", "mona", "--sensitivity", "lambda",
                 "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "expected NAME=VALUE[,VALUE...]" in err
    assert "  lambda (lam): 0.5; uniform [0, 1]" in err and "  inner_steps: 1; one of (1, 2, 3, 5)" in err
    assert "  meta_grad: 'exact'; constant" in err and "  stage2_lr: 0.001; log-uniform [0.0001, 0.01]" in err


def test_space_file_reads_exponents_without_a_dot_as_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads ``1e-4`` as a string; the space file reads it as YAML 1.2 does."""
    path = tmp_path / "space.yaml"
    path.write_text("stage2_lr: {low: 1e-5, high: 1E-2}\nstage2_weight_decay: 1e-4\n")
    resolved = SweepSpec(task="test_toy_task", method="finetune", backbone="test_efficientnet", init="random",
                         data_dir=str(tmp_path), space_file=str(path)).resolve()
    assert resolved.ranges == {"stage2_lr": {"low": 1e-5, "high": 1e-2}}
    assert resolved.fixed == {"stage2_weight_decay": 1e-4}


@pytest.mark.parametrize("text,message", [
    ("stage2_lr: {low: 0.1, high: 0.01}\n", "line 1: 'stage2_lr' range must be"),
    ("stage1_epochs: 2\nlearning_rate: 0.1\n", "line 2: unknown dimension 'learning_rate'"),
    ("stage1_epochs: [1, 2\n", "not valid YAML"),
    ("- stage2_lr\n", "line 1: expected a mapping"),
    ("stage1_epochs: two\n", "line 1: 'stage1_epochs' = 'two' is not a int"),
])
def test_malformed_space_file_is_refused_naming_the_key(text, message, tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    _refused(["--task", "test_toy_task", "--method", "emb", "--space", str(path), "--data-dir", str(tmp_path)],
             capsys, message)


def test_missing_data_file_names_it(capsys, tmp_path):
    _refused([*SPHERICAL, "--scale", "paper", "--init", "random", "--data-dir", str(tmp_path)], capsys,
             "s2_cifar100.gz")


def test_corrupt_data_file_is_refused_before_any_trial(capsys, tmp_path):
    (tmp_path / "s2_cifar100.gz").write_bytes(b"\x1f\x8b not really gzip")
    _refused([*SPHERICAL, "--scale", "paper", "--init", "random", "--data-dir", str(tmp_path),
              "--storage", str(tmp_path / "results")], capsys, "Cannot read")
    assert not (tmp_path / "results").exists() or not _snapshot(tmp_path / "results")


def test_wrong_shaped_array_names_the_file_and_shapes(capsys, tmp_path):
    _write_s2(tmp_path / "s2_cifar100.gz", np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.int64))
    err = _refused([*SPHERICAL, "--scale", "paper", "--init", "random", "--data-dir", str(tmp_path)], capsys,
                   "s2_cifar100.gz")
    assert "60" in err and "32" in err


def test_paper_scale_without_weights(capsys, tmp_path):
    _write_s2(tmp_path / "s2_cifar100.gz", np.zeros((4, 3, 60, 60), np.uint8), np.zeros(4, np.int64))
    _refused([*SPHERICAL, "--scale", "paper", "--data-dir", str(tmp_path)], capsys, "no local pretrained weights")


def test_storage_that_cannot_be_written(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _refused([*TOY, "--data-dir", str(tmp_path), "--storage", str(blocker / "results")], capsys,
             "cannot be written")


def test_existing_experiment_and_unknown_resume_leave_the_store_alone(capsys, tmp_path):
    results = tmp_path / "results"
    (results / "done" / "results_store" / "trials").mkdir(parents=True)
    (results / "done" / "results_store" / "trials" / "part-1.parquet").write_bytes(b"rows")
    (results / "done" / "sweep_spec.json").write_text("{}")
    before = _snapshot(results)
    _refused([*TOY, "--data-dir", str(tmp_path), "--storage", str(results), "--name", "done"], capsys,
             "already exists")
    _refused(["--resume", "--name", "nothing-here", "--storage", str(results)], capsys,
             "no experiment 'nothing-here' in " + str(results) + ". Experiments there: done.")
    _refused(["--resume", "--storage", str(results)], capsys, "--resume needs --name")
    assert _snapshot(results) == before


@pytest.mark.ray
def test_gpu_request_on_a_machine_without_gpus(capsys, tmp_path):
    _refused([*TOY, "--data-dir", str(tmp_path), "--storage", str(tmp_path / "r"), "--gpus-per-trial", "1"],
             capsys, "--gpus-per-trial 1 asked for, but the Ray cluster has 0 GPUs")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(KeyError, match="Did you mean 'spherical'"):
        main(["--task", "spherial", "--method", "finetune", "--data-dir", str(tmp_path), "--debug"])


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/crossmodal-tune-pwned",))


@pytest.mark.parametrize("content", ["truncated", "code"])
def test_corrupt_or_unsafe_checkpoint_is_refused_naming_the_file(content, tmp_path):
    trainable_cls = get_method("finetune").trainable
    trial = trainable_cls(config=sample_config("finetune", tmp_path))
    trial.train()
    ckpt = trial.save(str(tmp_path / "ckpt"))
    state = os.path.join(ckpt.checkpoint.path, CHECKPOINT_FILE)
    good = open(state, "rb").read()
    if content == "truncated":
        bad = good[: len(good) // 2]
    else:
        buffer = io.BytesIO()
        torch.save({"model": _RunsCode()}, buffer)
        bad = buffer.getvalue()
    open(state, "wb").write(bad)
    fresh = trainable_cls(config=sample_config("finetune", tmp_path))
    with pytest.raises(CheckpointError, match=f"cannot restore trial checkpoint {state}"):
        fresh.restore(ckpt)
    assert open(state, "rb").read() == bad  # left for the user to inspect
    assert not os.path.exists("/tmp/crossmodal-tune-pwned")
    trial.stop(), fresh.stop()


def test_node_local_storage_is_refused_on_a_multi_host_cluster(tmp_path):
    from tuner.cluster import check_storage_shared, check_storage_writable

    mounts = tmp_path / "mounts"
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {shared} nfs4 rw 0 0\n")
    hosts = {"node-a", "node-b"}
    with pytest.raises(ValueError, match=r"node-local \(ext4 filesystem\) but the Ray cluster spans 2 hosts"):
        check_storage_shared(str(tmp_path / "results"), hosts, mounts_file=str(mounts))
    check_storage_shared(str(shared / "results"), hosts, mounts_file=str(mounts))  # NFS: fine
    check_storage_shared(str(tmp_path / "results"), {"node-a"}, mounts_file=str(mounts))  # one host: fine
    check_storage_shared("s3://bucket/results", hosts, mounts_file=str(mounts))  # a URI: fine
    check_storage_writable(f"file://{tmp_path}/uri-results")  # pyarrow filesystems take URIs
    assert (tmp_path / "uri-results").is_dir()
    with pytest.raises(ValueError, match="cannot be written"):
        check_storage_writable("nosuchscheme://bucket/results")
