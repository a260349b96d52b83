"""Tests of the Parquet results store (tuner/store.py): writer and reader alone, then in real
Ray Tune sweeps with a tiny pure-Python trainable (ASHA pruning, errors, NaN, divergence and a
``Tuner.restore`` resume)."""
from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tuner import store, store_callback
from tuner.store import (
    HISTORY,
    TRIALS,
    append_rows,
    compact_store,
    list_experiments,
    read_history,
    read_trials,
    store_dir,
)

STATIC = {"task": "toy", "method": "toy_method", "backbone": "none", "scale": "tiny",
          "data_source": "synthetic", "code_version": "test"}
MAX_IT = 6


def _parts(root, experiment, table):
    return sorted(Path(store_dir(str(root), experiment), table).glob("*.parquet"))


def _hist(trial_id, iteration, **values):
    return {"experiment": "exp", "trial_id": trial_id, "iteration": iteration, **values}


# ------------------------------------------------------------------------------------------
# Writer and reader without Ray


def test_empty_store_has_key_columns(tmp_path):
    trials, history = read_trials(tmp_path, "exp"), read_history(tmp_path, "exp")
    assert trials.empty and history.empty
    assert {"experiment", "trial_id", "status"} <= set(trials.columns)
    assert {"experiment", "trial_id", "iteration"} <= set(history.columns)
    assert list_experiments(tmp_path) == []
    assert list_experiments(tmp_path / "missing") == []


def test_store_dir_and_uris(tmp_path):
    assert store_dir("s3://b/runs", "e") == "s3://b/runs/e/results_store"
    append_rows(f"file://{tmp_path}", "e1", HISTORY, [_hist("t", 1, v=1.0)])
    append_rows(tmp_path, "e2", TRIALS, [{"trial_id": "t", "status": "completed"}])
    (tmp_path / "not_an_experiment").mkdir()
    assert list_experiments(tmp_path) == ["e1", "e2"]
    assert read_history(str(tmp_path), "e1")["v"].tolist() == [1.0]
    with pytest.raises(ValueError, match="experiment name"):
        store_dir(tmp_path, "a/b")


def test_last_write_wins_and_sorted(tmp_path):
    append_rows(tmp_path, "exp", HISTORY, [_hist("b", 2, v=0.1), _hist("a", 1, v=0.5)])
    append_rows(tmp_path, "exp", HISTORY, [_hist("a", 1, v=0.4), _hist("a", 1, v=0.3)])
    append_rows(tmp_path, "exp", TRIALS, [{"trial_id": "a", "status": "error", "error": "x"}])
    append_rows(tmp_path, "exp", TRIALS, [{"trial_id": "a", "status": "completed"}])
    history = read_history(tmp_path, "exp")
    assert list(zip(history.trial_id, history.iteration, history.v)) == [
        ("a", 1, 0.3), ("b", 2, 0.1)]
    trials = read_trials(tmp_path, "exp")
    assert trials.trial_id.tolist() == ["a"]
    assert trials.status.tolist() == ["completed"] and trials.error.isna().all()


def test_schema_unified_across_parts(tmp_path):
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, a=1, s="x")])
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 2, b="y", k=None)])
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 3, a=2.5, k=4, s="z")])
    df = read_history(tmp_path, "exp")
    assert df.a.tolist()[0] == 1.0 and math.isnan(df.a.tolist()[1]) and df.a.tolist()[2] == 2.5
    assert df.b.isna().tolist() == [True, False, True]
    assert df.s.tolist()[::2] == ["x", "z"]
    assert df.k.tolist()[2] == 4


def test_incompatible_types_read_and_not_lost_by_compaction(tmp_path):
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, v="text")])
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 2, v=2.0)])
    assert read_history(tmp_path, "exp").v.tolist() == ["text", 2.0]
    compact_store(tmp_path, "exp")  # cannot merge: leaves the parts alone
    assert len(_parts(tmp_path, "exp", HISTORY)) == 2
    assert read_history(tmp_path, "exp").v.tolist() == ["text", 2.0]


def test_nan_and_inf_round_trip(tmp_path):
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, v=float("nan"), w=float("inf"),
                                                 u=np.float32(-np.inf), flag=np.bool_(True))])
    row = read_history(tmp_path, "exp").iloc[0]
    assert math.isnan(row.v) and row.w == math.inf and row.u == -math.inf and row.flag
    # In the file NaN is a null of a float column (SQL aggregates skip it); inf stays.
    part = pq.read_table(_parts(tmp_path, "exp", HISTORY)[0])
    assert part.schema.field("v").type == pa.float64() and part["v"].null_count == 1
    assert part["w"].to_pylist() == [math.inf]


def test_non_scalar_and_missing_key_rejected(tmp_path):
    with pytest.raises(ValueError, match="Non-scalar"):
        append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, v=[1, 2])])
    with pytest.raises(ValueError, match="key column"):
        append_rows(tmp_path, "exp", HISTORY, [{"trial_id": "t", "v": 1.0}])
    with pytest.raises(ValueError, match="Unknown table"):
        append_rows(tmp_path, "exp", "results", [{"trial_id": "t"}])


def test_compaction_preserves_rows(tmp_path):
    for it in range(1, 6):
        append_rows(tmp_path, "exp", HISTORY, [_hist("t", it, v=float(it))])
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 2, v=20.0)])  # a re-report
    for tid in "ab":
        append_rows(tmp_path, "exp", TRIALS, [{"trial_id": tid, "status": "completed"}])
    before_h, before_t = read_history(tmp_path, "exp"), read_trials(tmp_path, "exp")
    (Path(store_dir(str(tmp_path), "exp"), HISTORY) / ".x.parquet.tmp").write_bytes(b"half")
    compact_store(tmp_path, "exp")
    assert len(_parts(tmp_path, "exp", HISTORY)) == 1 and len(_parts(tmp_path, "exp", TRIALS)) == 1
    assert not list(Path(store_dir(str(tmp_path), "exp"), HISTORY).glob(".*"))
    pd.testing.assert_frame_equal(read_history(tmp_path, "exp"), before_h)
    pd.testing.assert_frame_equal(read_trials(tmp_path, "exp"), before_t)
    assert read_history(tmp_path, "exp").v.tolist() == [1.0, 20.0, 3.0, 4.0, 5.0]
    # A later write still wins over the compacted file.
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 2, v=-1.0)])
    assert read_history(tmp_path, "exp").v.tolist()[1] == -1.0
    compact_store(tmp_path, "exp")
    assert read_history(tmp_path, "exp").v.tolist()[1] == -1.0


def test_crash_between_compaction_write_and_delete(tmp_path, monkeypatch):
    for it in range(1, 4):
        append_rows(tmp_path, "exp", HISTORY, [_hist("t", it, v=float(it))])
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, v=10.0)])
    before = read_history(tmp_path, "exp")
    real_write = store._write_atomic

    class Killed(BaseException):
        pass

    def write_then_die(*args, **kwargs):
        real_write(*args, **kwargs)
        raise Killed  # the driver dies after the merged file, before deleting the parts

    monkeypatch.setattr(store, "_write_atomic", write_then_die)
    with pytest.raises(Killed):
        compact_store(tmp_path, "exp")
    monkeypatch.undo()
    assert len(_parts(tmp_path, "exp", HISTORY)) == 5  # 4 parts + the merged copy
    pd.testing.assert_frame_equal(read_history(tmp_path, "exp"), before)
    compact_store(tmp_path, "exp")  # the next compaction cleans up
    assert len(_parts(tmp_path, "exp", HISTORY)) == 1
    pd.testing.assert_frame_equal(read_history(tmp_path, "exp"), before)


def test_history_beyond_final_iteration_dropped(tmp_path):
    # t: a lost attempt reported 1..5; the resumed trial ended at 4 (e.g. pruned earlier).
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", i, v=float(i)) for i in range(1, 6)])
    append_rows(tmp_path, "exp", TRIALS, [{"trial_id": "t", "status": "pruned", "iterations": 4}])
    # r: errored after 2, resumed and still running (its rows are newer than its error row).
    append_rows(tmp_path, "exp", HISTORY, [_hist("r", i, v=float(i)) for i in range(1, 3)])
    append_rows(tmp_path, "exp", TRIALS, [{"trial_id": "r", "status": "error", "iterations": 2}])
    append_rows(tmp_path, "exp", HISTORY, [_hist("r", i, v=float(i)) for i in range(2, 5)])
    append_rows(tmp_path, "exp", HISTORY, [_hist("u", i, v=float(i)) for i in range(1, 3)])
    history = read_history(tmp_path, "exp")
    assert history.groupby("trial_id").iteration.agg(list).to_dict() == {
        "r": [1, 2, 3, 4], "t": [1, 2, 3, 4], "u": [1, 2]}
    compact_store(tmp_path, "exp")  # written_at survives compaction, and so does the rule
    pd.testing.assert_frame_equal(read_history(tmp_path, "exp"), history)


def _result(it, stage, val, **extra):
    return {"training_iteration": it, "time_total_s": float(it), "time_this_iter_s": 1.0 * stage,
            "timestamp": 1_700_000_000 + it,
            "stage": stage, "stage_name": f"s{stage}", "val_metric": val, "finished": False,
            "diverged": False, "test_metric": float("nan"), "config": {"x": 1}, "pid": 1,
            "done": False, "hist": [1, 2], "nested": {"a": 1.5, "b": [1]}, **extra}


def test_callback_rebuilds_trial_log_after_restore(tmp_path):
    """Without Ray: a pickled callback (what Tuner.restore unpickles) ends a trial whose first
    iterations an earlier driver wrote, one of them re-reported after the restore."""
    cls = store_callback.ResultsStoreCallback
    trial = SimpleNamespace(trial_id="t1", config={"x": 0.5, "seed": 3, "opts": [1, 2]},
                            run_metadata=SimpleNamespace(last_result={}))
    first = cls(tmp_path, "exp", STATIC, metric="val_metric", mode="min", compact_every=2)
    for it, stage, val in [(1, 1, 0.9), (2, 1, 0.7), (3, 2, 0.5)]:
        first.on_trial_result(0, [], trial, _result(it, stage, val))
        first.on_step_end(0, [])
    assert len(_parts(tmp_path, "exp", HISTORY)) == 2  # compacted after 2 parts, then 1 more
    restored = pickle.loads(pickle.dumps(first))
    assert restored._logs == {} and restored is not first
    restored.on_trial_result(0, [], trial, _result(3, 2, 0.6))  # re-reported after restore
    restored.on_trial_result(0, [], trial, _result(4, 2, 0.55, finished=True, test_metric=0.4))
    restored.on_trial_complete(0, [], trial)
    row = read_trials(tmp_path, "exp").iloc[0]
    assert row.status == "completed" and row.iterations == 4 and row["config/seed"] == 3
    assert "seed" not in row.index  # one seed column: config/seed
    assert row.best_val_metric == 0.55 and row.final_val_metric == 0.55 and row.test_metric == 0.4
    assert row.stage1_time_s == 2.0 and row.stage2_time_s == 4.0  # (1+1) and (2+2)
    assert row["config/x"] == 0.5 and row["config/opts"] == "[1, 2]" and row.task == "toy"
    history = read_history(tmp_path, "exp")
    assert history.iteration.tolist() == [1, 2, 3, 4]
    assert history.val_metric.tolist() == [0.9, 0.7, 0.6, 0.55]
    assert history.timestamp.iloc[0] == pd.Timestamp(1_700_000_001, unit="s", tz="UTC")
    assert "nested/a" in history.columns and "hist" not in history.columns
    assert not {"config", "pid", "done", "training_iteration", "config/x"} & set(history.columns)


def test_callback_rejects_bad_arguments(tmp_path):
    cls = store_callback.ResultsStoreCallback
    with pytest.raises(ValueError, match="mode"):
        cls(tmp_path, "exp", {}, mode="best")
    with pytest.raises(ValueError, match="clash"):
        cls(tmp_path, "exp", {"status": "x"})
    with pytest.raises(ValueError, match="compact_every"):
        cls(tmp_path, "exp", {}, compact_every=0)


def test_reader_relists_when_a_compaction_removes_parts(tmp_path, monkeypatch):
    append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, v=1.0)])
    real_list = store._list_parts
    calls = []

    def stale_then_real(fs, table_dir):  # the first listing names a part deleted since
        calls.append(table_dir)
        gone = [table_dir + "/00000000000000000001-gone.parquet"] if len(calls) == 1 else []
        return real_list(fs, table_dir) + gone

    monkeypatch.setattr(store, "_list_parts", stale_then_real)
    assert read_history(tmp_path, "exp").v.tolist() == [1.0] and len(calls) >= 2


# ------------------------------------------------------------------------------------------
# Schema: nulls, one seed column, timestamps, versions; old stores; SQL (DuckDB)


def test_schema_types_nulls_and_version(tmp_path):
    cb = store_callback.ResultsStoreCallback(tmp_path, "exp", STATIC, compact_every=None)
    trial = SimpleNamespace(trial_id="p", config={"x": 0.5, "seed": 4},
                            run_metadata=SimpleNamespace(last_result={}))
    cb.on_trial_result(0, [], trial, _result(1, 1, float("nan")))  # nothing finite, no test
    cb.on_trial_complete(0, [], trial)  # pruned
    compact_store(tmp_path, "exp")
    trials = pq.read_table(_parts(tmp_path, "exp", TRIALS)[0])
    history = pq.read_table(_parts(tmp_path, "exp", HISTORY)[0])
    for name in ("best_val_metric", "final_val_metric", "test_metric"):
        assert trials.schema.field(name).type == pa.float64() and trials[name].null_count == 1
    # a float column that was NaN in every row keeps its type, as nulls
    assert history.schema.field("test_metric").type == pa.float64()
    assert history["test_metric"].null_count == history["val_metric"].null_count == 1
    for t in (trials, history):
        assert t.schema.field("written_at").type == pa.timestamp("us", tz="UTC")
        assert t["schema_version"].to_pylist() == [store.SCHEMA_VERSION]
        assert "written_ns" not in t.column_names
    assert history.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert history["timestamp"].to_pylist()[0].timestamp() == 1_700_000_001
    assert "seed" not in trials.column_names and trials["config/seed"].to_pylist() == [4]
    assert trials.schema.field("time_total_s").type == pa.float64()
    # pandas readers: null floats read as NaN, times as tz-aware datetimes
    row = read_trials(tmp_path, "exp").iloc[0]
    assert math.isnan(row.test_metric) and math.isnan(row.best_val_metric)
    assert str(read_trials(tmp_path, "exp").written_at.dtype).startswith("datetime64")
    with pytest.raises(ValueError, match="datetime"):
        append_rows(tmp_path, "exp", HISTORY, [_hist("t", 1, timestamp=1_700_000_000)])


OLD_NS = 1_700_000_000_000_000_123  # a version-1 written_ns (2023), not a whole microsecond


def _write_old_part(root, experiment, table, rows, seq):
    """A part file as version 1 wrote it (no schema_version; written_ns, NaN, seed, int times)."""
    d = Path(store_dir(str(root), experiment), table)
    d.mkdir(parents=True, exist_ok=True)
    rows = [{**r, "written_ns": seq} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows), d / f"{seq:020d}-{'0' * 32}.parquet")


def _old_store(root, experiment):
    """Version-1 parts: trial o1 pruned at iteration 2 (a lost attempt had reported 3)."""
    _write_old_part(root, experiment, HISTORY, [
        {"experiment": experiment, "trial_id": "o1", "iteration": i, "time_total_s": float(i),
         "time_this_iter_s": 1.0, "timestamp": 1_700_000_000 + i,
         "val_metric": [0.9, float("nan"), 0.4][i - 1]} for i in (1, 2, 3)], OLD_NS)
    _write_old_part(root, experiment, TRIALS, [
        {"experiment": experiment, "trial_id": "o1", "status": "pruned", "iterations": 2,
         "best_val_metric": 0.9, "final_val_metric": float("nan"), "test_metric": float("nan"),
         "error": None, "seed": 7, "time_total_s": 2.0, "stage1_time_s": 2.0,
         "stage2_time_s": 0.0, "method": "m", "config/seed": 7, "config/x": 0.1}], OLD_NS + 5000)


def test_old_format_parts_read_with_new_ones_and_migrated(tmp_path):
    _old_store(tmp_path, "exp")
    append_rows(tmp_path, "exp", HISTORY, [
        _hist("n1", 1, val_metric=0.3, timestamp=pd.Timestamp("2026-01-01", tz="UTC"))])
    append_rows(tmp_path, "exp", TRIALS, [{
        "experiment": "exp", "trial_id": "n1", "status": "completed", "iterations": 1,
        "test_metric": 0.25, "method": "m", "config/seed": 8, "config/x": 0.2}])
    trials, history = read_trials(tmp_path, "exp"), read_history(tmp_path, "exp")
    assert trials.trial_id.tolist() == ["n1", "o1"] and "seed" not in trials.columns
    by_id = trials.set_index("trial_id")
    assert by_id["config/seed"].to_dict() == {"n1": 8, "o1": 7}
    assert by_id.schema_version.tolist() == [2, 2]
    assert math.isnan(by_id.test_metric["o1"]) and by_id.test_metric["n1"] == 0.25
    assert by_id.written_at["o1"] == pd.Timestamp(OLD_NS // 1000 + 5, unit="us", tz="UTC")
    assert by_id.written_at["n1"] > by_id.written_at["o1"]
    # the stale-row rule holds across versions: o1's iteration 3 predates its trials row
    assert list(zip(history.trial_id, history.iteration)) == [("n1", 1), ("o1", 1), ("o1", 2)]
    assert history.timestamp[1] == pd.Timestamp(1_700_000_001, unit="s", tz="UTC")
    assert math.isnan(history.val_metric[2])
    compact_store(tmp_path, "exp")
    pd.testing.assert_frame_equal(read_trials(tmp_path, "exp"), trials)
    pd.testing.assert_frame_equal(read_history(tmp_path, "exp"), history)
    for table in (TRIALS, HISTORY):
        (part,) = _parts(tmp_path, "exp", table)
        t = pq.read_table(part)
        assert "written_ns" not in t.column_names and "seed" not in t.column_names
        assert set(t["schema_version"].to_pylist()) == {2}
        floats = [n for n in t.column_names if pa.types.is_floating(t.schema.field(n).type)]
        assert not any(pc.any(pc.is_nan(t[n])).as_py() for n in floats)


def test_old_compacted_store_is_migrated_by_compaction(tmp_path):
    _old_store(tmp_path, "old")  # one version-1 file per table, as a compacted old store
    before = read_trials(tmp_path, "old")
    compact_store(tmp_path, "old")
    (part,) = _parts(tmp_path, "old", TRIALS)
    t = pq.read_table(part)
    assert t["schema_version"].to_pylist() == [2] and t["test_metric"].null_count == 1
    pd.testing.assert_frame_equal(read_trials(tmp_path, "old"), before)
    compact_store(tmp_path, "old")  # current: left alone
    assert _parts(tmp_path, "old", TRIALS) == [part]


def test_newer_schema_version_refused(tmp_path):
    append_rows(tmp_path, "exp", TRIALS, [{"trial_id": "t", "status": "completed"}])
    (part,) = _parts(tmp_path, "exp", TRIALS)
    t = pq.read_table(part)
    t = t.set_column(t.column_names.index("schema_version"), "schema_version",
                     pa.array([store.SCHEMA_VERSION + 1], pa.int64()))
    pq.write_table(t, part)
    with pytest.raises(ValueError, match="schema version 3"):
        read_trials(tmp_path, "exp")


def test_duckdb_reads_and_aggregates_the_store(tmp_path):
    """SQL users: nulls are skipped by avg/count; after compaction one row per trial; on a live
    store the documented ``qualify`` keeps the newest row per key."""
    duckdb = pytest.importorskip("duckdb", reason="a test dependency: pip install -e .[test]")
    # (method, trial id, kind, x): completed trials have test_metric = x; pruned, diverged and
    # errored ones have none. Trial "b2" errored first, then completed on a resume.
    plan = [("a", "a1", "completed", 0.2), ("a", "a2", "completed", 0.4),
            ("a", "a3", "pruned", 0.9), ("a", "a4", "diverged", 0.5),
            ("b", "b1", "completed", 0.6), ("b", "b2", "error", 0.8),
            ("b", "b2", "completed", 0.8), ("b", "b3", "pruned", 0.1)]
    for method, tid, kind, x in plan:
        cb = store_callback.ResultsStoreCallback(
            tmp_path, "exp", {**STATIC, "method": method}, compact_every=None)
        trial = SimpleNamespace(trial_id=tid, config={"x": x, "seed": 0},
                                run_metadata=SimpleNamespace(last_result={}))
        last = {"completed": dict(finished=True, test_metric=x),
                "diverged": dict(diverged=True, train_loss=float("nan"))}.get(kind, {})
        cb.on_trial_result(0, [], trial, _result(1, 1, 1.0))
        cb.on_trial_result(0, [], trial, _result(2, 2, float("nan") if kind == "diverged" else x,
                                                 **last))
        if kind == "error":
            cb.on_trial_error(0, [], trial)
        else:
            cb.on_trial_complete(0, [], trial)
    query = ("select method, avg(test_metric) as mean, count(test_metric) as n, count(*) as rows "
             "from {source} group by method order by method")
    expected = [("a", pytest.approx(0.3), 2, 4), ("b", pytest.approx(0.7), 2, 3)]

    live = (f"(select * from read_parquet('{store.table_glob(tmp_path, 'exp', TRIALS)}', "
            "union_by_name = true) qualify row_number() over "
            "(partition by trial_id order by written_at desc) = 1)")
    assert duckdb.sql(query.format(source=live)).fetchall() == expected

    compact_store(tmp_path, "exp")
    compacted = f"read_parquet('{store.table_glob(tmp_path, 'exp', TRIALS)}')"
    assert duckdb.sql(query.format(source=compacted)).fetchall() == expected
    # the same numbers by hand from the pandas reader (NaN there, null in SQL)
    trials = read_trials(tmp_path, "exp")
    by_hand = trials.groupby("method").test_metric.agg(["mean", "count"])
    assert by_hand["mean"].tolist() == pytest.approx([0.3, 0.7])
    assert by_hand["count"].tolist() == [2, 2]
    status = duckdb.sql(f"select status, typeof(written_at), count(*) from {compacted} "
                        "where trial_id = 'b2' group by all").fetchall()
    assert status == [("completed", "TIMESTAMP WITH TIME ZONE", 1)]
    # the diverged trial's NaN metric is null in history: the history mean is a number
    history = f"read_parquet('{store.table_glob(tmp_path, 'exp', HISTORY)}')"
    [(mean,)] = duckdb.sql(f"select avg(val_metric) from {history} where iteration = 2").fetchall()
    assert mean == pytest.approx(np.mean([0.2, 0.4, 0.9, 0.6, 0.8, 0.1]))


# ------------------------------------------------------------------------------------------
# Real Tune sweeps


def _make_trainable():
    """The toy ``tune.Trainable`` (built on demand: collecting this module imports no Ray)."""
    from ray import tune

    class Toy(tune.Trainable):
        """step: stage 1 for iterations 1-2, stage 2 after; ends (finished) at max_it.

        kind: "ok"; "raise" (raises at iteration 2); "nan" (NaN metric, inf loss at 2);
        "diverge" (diverged at 3); "flaky" (raises at 4 on its first attempt only: a marker file in
        marker_dir remembers the attempt).
        """

        def setup(self, config):
            self._configure(config)

        def _configure(self, config):
            self.x = config["x"]
            self.kind = config["kind"]
            self.max_it = config["max_it"]
            self.marker_dir = config["marker_dir"]
            self.total = 0.0

        def reset_config(self, new_config):
            self._configure(new_config)
            return True

        @staticmethod
        def val(x, it):
            return (x - 0.3) ** 2 + 1.0 / it

        def step(self):
            it = self.iteration + 1
            val = self.val(self.x, it)
            loss = val * 2
            attempt = 1
            if self.kind == "raise" and it == 2:
                raise ValueError(f"boom: kind=raise x={self.x}")
            if self.kind == "flaky":
                marker = Path(self.marker_dir, f"flaky-{self.trial_id}")
                attempt = 2 if marker.exists() else 1
                if it == 4 and attempt == 1:
                    marker.write_text("failed once")
                    raise RuntimeError(f"flaky failure x={self.x}")
            if self.kind == "nan" and it == 2:
                val, loss = float("nan"), float("inf")
            diverged = self.kind == "diverge" and it == 3
            self.total += 1.0
            finished = it >= self.max_it and not diverged
            return {
                "val_metric": val, "train_loss": loss, "stage": 1 if it <= 2 else 2,
                "stage_name": "align" if it <= 2 else "finetune", "epoch": it, "lr": 0.1 / it,
                "finished": finished, "diverged": diverged, "attempt": attempt,
                "test_metric": val if finished else float("nan"),
                "done": finished or diverged,
            }

        def save_checkpoint(self, checkpoint_dir):
            return {"total": self.total}

        def load_checkpoint(self, checkpoint):
            self.total = checkpoint["total"]

    Toy.__name__ = Toy.__qualname__ = "ToyTrainable"
    # Pickled by value (a local class referring to no names of this module): workers need
    # not import this test module and its pandas/pyarrow imports at each actor start.
    return Toy


@pytest.fixture(scope="module")
def toy(ray_local):
    return _make_trainable()


def _config(tmp_path, **space):
    return {"kind": "ok", "max_it": MAX_IT, "marker_dir": str(tmp_path), **space}


def _tuner(tmp_path, trainable, space, scheduler=None, callbacks=(), checkpoint_frequency=0):
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_metric", mode="min", scheduler=scheduler,
                                    max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(
            name="exp", storage_path=str(tmp_path), callbacks=list(callbacks), verbose=0,
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=checkpoint_frequency)),
    )


def _check_consistent(trials: pd.DataFrame, history: pd.DataFrame) -> None:
    """One history row per (trial, iteration), 1..iterations contiguous, summaries match."""
    assert not history.duplicated(["trial_id", "iteration"]).any()
    assert trials.trial_id.is_unique
    for row in trials.itertuples():
        h = history[history.trial_id == row.trial_id]
        assert h.iteration.tolist() == list(range(1, row.iterations + 1)), row.trial_id
        assert row.best_val_metric == pytest.approx(np.nanmin(h.val_metric))
        assert row.final_val_metric == pytest.approx(h.val_metric.iloc[-1], nan_ok=True)
        for stage in (1, 2):
            expected = h.loc[h.stage == stage, "time_this_iter_s"].sum()
            assert getattr(row, f"stage{stage}_time_s") == pytest.approx(expected)


@pytest.mark.ray
def test_asha_sweep_fills_store(tmp_path, toy):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    xs = [0.3, 0.35, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0]
    space = _config(tmp_path, x=tune.grid_search(xs))
    callback = store_callback.ResultsStoreCallback(tmp_path, "exp", STATIC, compact_every=5)
    asha = ASHAScheduler(max_t=MAX_IT, grace_period=1, reduction_factor=2)
    results = _tuner(tmp_path, toy, space, scheduler=asha, callbacks=[callback]).fit()
    assert not results.errors

    trials, history = read_trials(tmp_path, "exp"), read_history(tmp_path, "exp")
    assert len(trials) == len(xs) and set(trials.status) == {"completed", "pruned"}
    assert (trials.loc[trials.status == "completed", "iterations"] == MAX_IT).all()
    assert (trials.loc[trials.status == "pruned", "iterations"] < MAX_IT).all()
    assert sorted(trials["config/x"]) == xs
    assert (trials[list(STATIC)] == pd.Series(STATIC)).all().all()
    _check_consistent(trials, history)
    done = trials[trials.status == "completed"]
    assert np.isfinite(done.test_metric).all() and trials.error.isna().all()
    assert {"stage", "stage_name", "epoch", "train_loss", "lr", "finished"} <= set(history.columns)
    # on_experiment_end compacted each table into one file.
    assert len(_parts(tmp_path, "exp", HISTORY)) == 1 and len(_parts(tmp_path, "exp", TRIALS)) == 1


@pytest.mark.ray
def test_errors_nan_divergence_and_resume(tmp_path, toy):
    """One experiment (each failing trial costs a new actor, ~8 s here, so they share one):
    an error, NaN/inf, a divergence and a flaky trial; then ``Tuner.restore`` resumes it."""
    from ray import tune

    kinds = ["ok", "nan", "diverge", "raise", "flaky"]
    space = _config(tmp_path, x=0.5, kind=tune.grid_search(kinds))
    callback = store_callback.ResultsStoreCallback(tmp_path, "exp", STATIC)
    # Checkpoints at iterations 2, 4, ...: the flaky trial fails at 4 with 1..3 written and
    # resumes from 2, so it re-reports iteration 3.
    first = _tuner(tmp_path, toy, space, callbacks=[callback], checkpoint_frequency=2).fit()
    assert len(first.errors) == 2

    trials, history = read_trials(tmp_path, "exp"), read_history(tmp_path, "exp")
    by_kind = trials.set_index("config/kind")
    assert by_kind.status.to_dict() == {"ok": "completed", "nan": "completed",
                                        "diverge": "diverged", "raise": "error", "flaky": "error"}
    assert "boom: kind=raise x=0.5" in by_kind.loc["raise", "error"]
    assert "flaky failure" in by_kind.loc["flaky", "error"]
    assert len(by_kind.loc["raise", "error"]) <= store.ERROR_TAIL_CHARS
    assert by_kind.iterations.to_dict() == {
        "ok": MAX_IT, "nan": MAX_IT, "diverge": 3, "raise": 1, "flaky": 3}
    nan_rows = history[history.trial_id == by_kind.loc["nan", "trial_id"]].set_index("iteration")
    assert math.isnan(nan_rows.loc[2, "val_metric"]) and nan_rows.loc[2, "train_loss"] == math.inf
    assert by_kind.loc["nan", "best_val_metric"] == pytest.approx(toy.val(0.5, MAX_IT))
    _check_consistent(trials, history)
    ended_before = trials[trials["config/kind"].isin(["ok", "nan", "diverge"])]

    # Tuner.restore takes no RunConfig: it unpickles the one in tuner.pkl, callbacks included
    # (a copy of `callback` as it was when the Tuner was built).
    restored = tune.Tuner.restore(str(tmp_path / "exp"), trainable=toy, resume_errored=True)
    assert len(restored.fit().errors) == 1  # "raise" fails again

    trials, history = read_trials(tmp_path, "exp"), read_history(tmp_path, "exp")
    by_kind = trials.set_index("config/kind")
    assert len(trials) == len(kinds)
    assert by_kind.status.to_dict() == {"ok": "completed", "nan": "completed",
                                        "diverge": "diverged", "raise": "error",
                                        "flaky": "completed"}
    assert by_kind.loc["flaky", "iterations"] == MAX_IT and pd.isna(by_kind.loc["flaky", "error"])
    assert "boom" in by_kind.loc["raise", "error"]
    _check_consistent(trials, history)
    flaky = history[history.trial_id == by_kind.loc["flaky", "trial_id"]].set_index("iteration")
    # Iteration 3 was reported twice; the resumed attempt's row won.
    assert flaky.attempt.to_dict() == {1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 2}
    pd.testing.assert_frame_equal(  # trials that had ended were neither re-run nor rewritten
        trials[trials["config/kind"].isin(["ok", "nan", "diverge"])], ended_before)
    assert len(_parts(tmp_path, "exp", HISTORY)) == 1
    assert pq.read_table(_parts(tmp_path, "exp", HISTORY)[0]).num_rows == len(history)
