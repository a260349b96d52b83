"""No idle CPUs (issue #15.4): every slot's first trial starts at once (a searcher's concurrency
is the cluster's slots), and the data is read while Ray starts."""

import pytest
from trial_configs import TOY

from tuner import cluster
from tuner.experiment import default_search, max_concurrent
from tuner.spec import SweepSpec


@pytest.mark.ray
def test_a_data_error_read_while_ray_starts_is_raised_and_ray_shut_down(tmp_path, monkeypatch):
    import ray

    from tuner import experiment

    def bad_data(resolved):
        raise ValueError("corrupt data file")

    monkeypatch.setattr(experiment, "prepare_data", bad_data)
    resolved = SweepSpec(method="finetune", data_dir=str(tmp_path), storage=str(tmp_path / "r"), name="x",
                         **TOY).resolve()
    assert not ray.is_initialized()  # runs before the module's ray_local fixture starts one
    with pytest.raises(ValueError, match="corrupt data file"):
        experiment.run_experiment(resolved)
    assert not ray.is_initialized()


def test_trial_slots_and_max_concurrent_follow_the_cluster(ray_local, tmp_path):
    assert cluster.trial_slots(1, 0) == 2  # ray_local: 2 CPUs
    assert cluster.trial_slots(0.5, 0) == 4
    assert cluster.trial_slots(3, 0) == 1  # never 0 (check_resources refuses what cannot run)
    base = dict(method="finetune", data_dir=str(tmp_path), storage=str(tmp_path / "r"), name="x", **TOY)
    search = SweepSpec(**base).resolve()
    assert max_concurrent(search, default_search(search, "min")[1]) == 2
    assert max_concurrent(SweepSpec(**base, max_concurrent=1).resolve(), {"search_alg": object()}) == 1
    grid = SweepSpec(**base, sensitivity="stage2_lr=0.001,0.01").resolve()
    assert max_concurrent(grid, default_search(grid, "min")[1]) is None  # Tune's own default


def test_the_driver_resolves_a_sweep_without_importing_model_or_metric_libraries(tmp_path):
    """timm (~5 s with torchvision and torch._dynamo), scikit-learn (~2 s) and scipy.stats (~1.4 s) are
    imported where a model is built or a metric or interval that needs them is computed: in the
    trial actors or the report, not the sweep's driver."""
    import subprocess
    import sys

    heavy = ("timm", "torchvision", "sklearn", "scipy.stats", "transformers")
    code = ("import sys\n"
            "from tuner import experiment, sweep, tables\n"
            "from tuner.spec import SweepSpec\n"
            f"SweepSpec(task='spherical', method='mona', data_dir={str(tmp_path)!r}).resolve()\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
