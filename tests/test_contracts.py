"""Registry-driven contracts: every registered method, task and backbone, with no edit here."""
from __future__ import annotations

import functools
import importlib
import inspect
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_files_nasbench360 import WRITERS as NASBENCH360_WRITERS
from tiny_files_pdebench import WRITERS as PDEBENCH_WRITERS
from trial_configs import sample_config

import trainables
from trainables.base import TrialConfig, TwoStageTrainable
from trainables.metrics import get_metric
from trainables.registry import (
    Registry,
    get_backbone,
    get_method,
    get_task,
    list_backbones,
    list_methods,
    list_tasks,
)
from trainables.tasks.data import task_scales

REPO = Path(__file__).resolve().parents[1]
TINY_FILES = {**NASBENCH360_WRITERS, **PDEBENCH_WRITERS}  # task -> writer of tiny published-format files
TINY_BACKBONES = {"2d": "test_efficientnet", "1d": "test_bert"}
# What every step reports (README "Methods"): one schema for ASHA, Optuna and the store.
RESULT_KEYS = (
    "stage", "stage_name", "epoch", "stage_epoch", "stage2_epoch", "train_loss", "val_metric",
    "best_val_metric", "test_metric", "lr", "samples_per_s", "diverged", "finished", "node_id", "gpu_ids",
)


@pytest.mark.parametrize("method", list_methods(include_hidden=True))
def test_space_is_picklable_and_samples_a_valid_config(method, tmp_path):
    space = functools.partial(get_method(method).space, defaults={"lr": 1e-3})
    assert pickle.loads(pickle.dumps(space)).func is get_method(method).space
    config = sample_config(method, tmp_path)
    cfg = get_method(method).trainable.config_class.from_config(config)
    assert cfg.task == "test_toy_task"


@pytest.mark.parametrize("method", list_methods(include_hidden=True))
def test_steps_report_fixed_keys_and_resume_exactly(method, tmp_path):
    """Every stage runs; a checkpoint two steps before the end resumes bit-for-bit."""
    config = sample_config(method, tmp_path)
    config["stage2_epochs"] = 2
    trainable_cls = get_method(method).trainable
    expected = set(RESULT_KEYS) | set(trainable_cls.loss_part_keys)
    a = trainable_cls(config=config)
    total = sum(stage.epochs for stage in a.plan)
    results = [a.train() for _ in range(total - 2)]
    ckpt = a.save(str(tmp_path / "ckpt"))
    results += [a.train() for _ in range(2)]
    assert all(expected <= set(r) for r in results)
    assert [r["stage"] for r in results] == [s.index for s in a.plan for _ in range(s.epochs)]
    assert results[-1]["finished"] and math.isfinite(results[-1]["test_metric"])
    assert not any(r["finished"] for r in results[:-1])

    b = trainable_cls(config=config)
    b.restore(ckpt)
    again = [b.train() for _ in range(2)]
    for mine, theirs in zip(again, results[-2:]):
        for key in ("stage", "train_loss", "val_metric", "test_metric", "best_val_metric", "lr"):
            assert mine[key] == theirs[key] or (math.isnan(mine[key]) and math.isnan(theirs[key])), key
    a.stop(), b.stop()


@pytest.mark.parametrize("method", list_methods(include_hidden=True))
def test_method_docstring_cites_a_paper(method):
    module = inspect.getmodule(get_method(method).trainable)
    assert module.__doc__ and ("arXiv" in module.__doc__ or "ICML" in module.__doc__)
    assert "Deviations" in module.__doc__


@pytest.mark.parametrize("task", list_tasks(include_hidden=True))
def test_task_metric_and_loss_exist(task):
    spec = get_task(task)
    assert get_metric(spec.metric).mode in ("min", "max")
    assert spec.output in ("classification", "dense") and spec.modality in ("1d", "2d")
    for scale in task_scales(task):
        d = spec.defaults_at(scale)
        assert d.optimizer in ("adamw", "adam", "sgd") and d.lr > 0 and d.weight_decay >= 0
        assert d.batch_size >= 1 and d.epochs >= 1 and d.grad_accum >= 1


@pytest.mark.parametrize("task", list_tasks(include_hidden=True))
def test_every_task_trains_a_step_with_a_tiny_backbone(task, tmp_path):
    """Paper-format tasks read tiny files in their published format; the others their embedded data."""
    spec = get_task(task)
    if task in TINY_FILES:
        TINY_FILES[task](tmp_path)
        scale = "paper"
    else:
        assert spec.has_mini, f"task {task!r} has neither tiny test files nor an embedded variant"
        scale = "mini"
    config = sample_config("finetune", tmp_path, task=task, scale=scale, backbone=TINY_BACKBONES[spec.modality])
    config.update(stage2_epochs=1, max_train_samples=8, batch_size=4, grad_accum=1, val_fraction=0.5)
    trial = get_method("finetune").trainable(config=config)
    result = trial.train()
    assert result["finished"] and math.isfinite(result["train_loss"]), result
    assert math.isfinite(result["val_metric"]) and math.isfinite(result["test_metric"]), result
    trial.stop()


@pytest.mark.parametrize("task", ["fsd50k", "deepsea", "darcyflow"])
def test_pare_trains_an_epoch_on_multi_label_and_dense_tasks(task, tmp_path):
    """Multi-hot and dense targets: PaRe's loss and its per-epoch OTDD probe (k-means pseudo-labels)."""
    TINY_FILES[task](tmp_path)
    spec = get_task(task)
    config = sample_config("pare", tmp_path, task=task, scale="paper", backbone=TINY_BACKBONES[spec.modality])
    config.update(stage2_epochs=1, max_train_samples=16, batch_size=4, grad_accum=1, val_fraction=0.5,
                  warmup_epochs=1)
    trial = get_method("pare").trainable(config=config)
    result = trial.train()
    assert result["finished"] and math.isfinite(result["train_loss"]), result
    assert math.isfinite(result["otdd_intermediate_source"]) and math.isfinite(result["test_metric"]), result
    assert result["k"] > 0 and all(math.isfinite(result[key]) for key in ("loss_mixed", "loss_source")), result
    assert trial.probe_y.dim() == 1 and trial.probe_y.dtype == torch.int64  # one OTDD class per sample
    trial.stop()


@pytest.mark.parametrize("backbone", list_backbones(include_hidden=True))
def test_backbone_stem_names_exist(backbone):
    spec = get_backbone(backbone)
    assert spec.layout in ("nhwc", "nchw", "nld")
    if spec.library == "timm":
        cfg = __import__("timm").models.get_pretrained_cfg(spec.model_id.split(".")[0])
        assert cfg is not None, spec.model_id
        return
    assert spec.library == "transformers" and spec.modality == "1d" and spec.target_seq_len >= 1
    from transformers import AutoModel

    from trainables.models.text_backbones import make_config

    with torch.device("meta"):  # architecture only, no memory
        model = AutoModel.from_config(make_config(spec.create_kwargs["config"]))
    for name in spec.stem:
        assert hasattr(getattr(model, name), "position_embeddings"), name


def test_frozen_method_leaves_the_encoder_untouched(tmp_path):
    config = sample_config("frozen", tmp_path)
    t = get_method("frozen").trainable(config=config)
    before = {k: v.clone() for k, v in t.model.encoder.state_dict().items()}
    embedder_before = [p.clone() for p in t.model.embedder.parameters()]
    t.train()
    for k, v in t.model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics
    assert any(not torch.equal(a, b) for a, b in zip(embedder_before, t.model.embedder.parameters()))


def test_config_refuses_missing_and_unknown_keys(tmp_path):
    config = sample_config("finetune", tmp_path)
    with pytest.raises(ValueError, match=r"missing keys \['stage2_lr'\]"):
        TrialConfig.from_config({k: v for k, v in config.items() if k != "stage2_lr"})
    with pytest.raises(ValueError, match=r"unknown keys \['lr'\]"):
        TrialConfig.from_config({**config, "lr": 0.1})


def test_diverging_trial_reports_diverged_and_stops(tmp_path):
    config = {**sample_config("finetune", tmp_path), "stage2_lr": 1e30, "optimizer": "sgd"}
    t = get_method("finetune").trainable(config=config)
    results = [t.train() for _ in range(2)]
    last = next(r for r in results if r["diverged"] or r["finished"])
    assert last["diverged"] and last["done"] and not last["finished"]
    assert math.isnan(last["val_metric"])


def test_registry_lookup_suggests_the_closest_name():
    with pytest.raises(KeyError, match="Did you mean 'spherical'"):
        get_task("spherial")
    with pytest.raises(KeyError, match="Registered: .*finetune"):
        get_method("fine-tune-all")
    registry = Registry("thing")
    registry.add("a", object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", object())


def test_hidden_fixtures_are_not_offered():
    assert "test_toy_task" not in list_tasks() and "test_toy_task" in list_tasks(include_hidden=True)
    assert "test_efficientnet" not in list_backbones()


def test_every_trainable_module_is_registered():
    """A module defining a Trainable is some method's (a line in trainables/methods.py)."""
    for path in (REPO / "trainables").glob("*.py"):
        module = importlib.import_module(f"trainables.{path.stem}")
        defines = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, TwoStageTrainable) and c.__module__ == module.__name__
                   and c is not TwoStageTrainable]
        if defines:  # each one is some method's Trainable (trainables/methods.py)
            registered = {get_method(m).trainable for m in list_methods(include_hidden=True)}
            assert set(defines) <= registered, module.__name__


def test_every_task_module_is_registered():
    """A module under trainables/tasks that registers tasks is imported by trainables.tasks."""
    registered = {get_task(t).loader.__module__ for t in list_tasks(include_hidden=True)}
    for path in (REPO / "trainables" / "tasks").glob("*.py"):
        if "register_task" in path.read_text():
            assert f"trainables.tasks.{path.stem}" in registered, path.name


def test_reading_results_imports_neither_torch_nor_ray():
    """Plots, reports and method lookups (space, defaults, aliases) stay light."""
    for command in (["-m", "tuner.report", "--help"], ["-m", "tuner.plot", "--help"]):
        subprocess.run([sys.executable, *command], check=True, cwd=REPO, capture_output=True)
    # --help of the analyses and of `python -m tuner` (which lists the commands) imports no library
    code = ("import sys, runpy; sys.argv = ['x', '--help']\n"
            "for m in ('tuner.analyze', 'tuner'):\n"
            "    try: runpy.run_module(m, run_name='__main__')\n"
            "    except SystemExit: pass\n"
            "heavy = [k for k in ('torch', 'ray', 'optuna', 'pandas', 'matplotlib') if k in sys.modules]\n"
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True).stdout
    assert "discrepancy" in out and all(f"  {c} " in out for c in ("sweep", "compare", "report", "plot", "analyze"))
    code = ("import sys, tuner.plot, tuner.report, trainables.registry as r; "
            "m = r.get_method('mona'); m.defaults; m.aliases; r.get_task('spherical'); "
            "heavy = [k for k in ('torch', 'ray') if k in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_imports_flow_one_way():
    code = ("import sys, trainables.registry as r; r.list_methods(); "
            "import search_spaces.finetune; "
            "assert 'tuner' not in sys.modules, 'trainables imported tuner'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    code = "import sys, search_spaces.finetune, search_spaces.common; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert trainables.__doc__
