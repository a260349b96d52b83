"""UCR/UEA tasks: the .ts reader (aeon's, checked) on hand-written files, and the archive files
shipped in aeon.

Specs are read from ``TASKS`` (filled by importing ``trainables.tasks``) rather than through
``get_task``, which imports every method and backbone (~17 s of CPU here); test_contracts.py
covers the registry lookups.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest

from trainables.errors import DataError
from trainables.registry import TASKS
from trainables.tasks import ucr
from trainables.tasks.data import RawTask, carve_validation
from trainables.tasks.ucr import encode_labels, load_archive_task, read_ts

UNIVARIATE = """\
#A made-up problem: three series of length 4.
#Comment lines may hold anything: @data, 1,2:3
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 1 2 10
@data
0.5,-1,2.25,3e-1:10
1,2,3,4:2
-0.5,0,0,1.5:1
"""

MULTIVARIATE = """\
@problemName TinyMV
@timestamps false
@univariate false
@dimensions 2
@equallength true
@classlabel true up down
@data
1,2,3:4,5,6:up
7,8,9:10,11,12:down
"""


def _write(tmp_path: Path, text: str, name: str = "Tiny_TRAIN.ts") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- reader


def test_reads_univariate_file(tmp_path):
    ts = read_ts(_write(tmp_path, UNIVARIATE))
    assert ts.x.dtype == np.float32 and ts.x.shape == (3, 1, 4)
    np.testing.assert_array_equal(ts.x[0, 0], np.float32([0.5, -1.0, 2.25, 0.3]))
    np.testing.assert_array_equal(ts.x[2, 0], np.float32([-0.5, 0.0, 0.0, 1.5]))
    assert ts.labels == ("10", "2", "1")
    assert ts.class_labels == ("1", "2", "10")
    # Numeric order of the header's labels: "1" -> 0, "2" -> 1, "10" -> 2 (not string order).
    assert encode_labels(ts.labels, ts.class_labels).tolist() == [2, 1, 0]


def test_reads_multivariate_file(tmp_path):
    ts = read_ts(_write(tmp_path, MULTIVARIATE))
    assert ts.x.shape == (2, 2, 3)  # (N, C, L)
    np.testing.assert_array_equal(ts.x[0], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(ts.x[1], [[7, 8, 9], [10, 11, 12]])
    # String labels: sorted order "down" < "up", whatever the header's order.
    assert encode_labels(ts.labels, ts.class_labels).tolist() == [1, 0]


def test_values_are_kept_as_stored(tmp_path):
    """No normalisation: a series far from zero mean / unit variance comes back unchanged."""
    text = UNIVARIATE.replace("1,2,3,4:2", "100,200,300,400:2")
    ts = read_ts(_write(tmp_path, text))
    np.testing.assert_array_equal(ts.x[1, 0], [100, 200, 300, 400])


# What aeon's reader refuses (wrapped in a DataError naming the file) and what read_ts refuses
# on top of it. aeon ignores unknown headers, text before @data, @seriesLength and @dimensions.
BROKEN = {
    "not a number": (UNIVARIATE.replace("1,2,3,4:2", "1,2,x,4:2"),
                     r"aeon's .ts reader failed with ValueError: could not convert .*'x'"),
    "blank line": (UNIVARIATE.replace("1,2,3,4:2", "\n1,2,3,4:2"), r"aeon's .ts reader failed.*case 2"),
    "missing value": (UNIVARIATE.replace("1,2,3,4:2", "1,?,3,4:2"), r"case 2, channel 0 has missing"),
    "NaN value": (UNIVARIATE.replace("1,2,3,4:2", "1,NaN,3,4:2"), r"case 2, channel 0 has missing"),
    "undeclared label": (UNIVARIATE.replace("1,2,3,4:2", "1,2,3,4:7"), r"label of case 2 .*found '7'"),
    "no label": (UNIVARIATE.replace("1,2,3,4:2", "1,2,3,4"), r"reader failed.*case 2"),
    "unequal lengths": (UNIVARIATE.replace("1,2,3,4:2", "1,2,3:2"), r"case 2 has a different number"),
    "unequal lengths declared": (
        UNIVARIATE.replace("1,2,3,4:2", "1,2,3:2").replace("@equalLength true", "@equalLength false"),
        r"unequal series lengths \(3 to 4\)"),
    "channel count": (MULTIVARIATE.replace("7,8,9:10,11,12:down", "7,8,9:down"),
                      r"case 2\. Expecting 2 but have read 1"),
    "no @data": (UNIVARIATE.split("\n@data")[0], r"at least one case"),
    "no cases": (UNIVARIATE.split("\n@data")[0] + "\n@data\n", r"at least one case"),
    "no class labels": (UNIVARIATE.replace("@classLabel true 1 2 10\n", ""), r"@classLabel true"),
    "repeated class label": (UNIVARIATE.replace("@classLabel true 1 2 10", "@classLabel true 1 2 2"),
                             r"distinct labels"),
    "timestamps": (UNIVARIATE.replace("@timeStamps false", "@timeStamps true"), r"@timeStamps"),
    "regression": (UNIVARIATE.replace("@classLabel true 1 2 10", "@targetLabel true"),
                   r"regression"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_files_raise_data_error_naming_the_file(tmp_path, case):
    text, message = BROKEN[case]
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_ts(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "Absent_TRAIN.ts"
    with pytest.raises(DataError, match="Absent_TRAIN.ts"):
        read_ts(path)


def test_missing_carrier_package_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(ucr.importlib.util, "find_spec", lambda name: None)
    message = r"'aeon' package, which is not installed.*pip install aeon"
    with pytest.raises(DataError, match=message):
        ucr.load_osuleaf(Path("."), "mini")


def test_problem_absent_from_carrier_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(ucr, "carrier_data_dir", lambda task, problem: tmp_path)
    with pytest.raises(DataError, match=r"JapaneseVowels[/\\]JapaneseVowels_eq_TRAIN\.ts"):
        ucr.load_japanese_vowels(Path("."), "mini")


TINY = ucr.ArchiveProblem("Tiny", "Tiny", (1, 4), num_classes=3, n_train=3, n_test=3)


def test_archive_task_checks_the_documented_facts(monkeypatch, tmp_path):
    (tmp_path / "Tiny").mkdir()
    for split in ucr.SPLITS:
        _write(tmp_path / "Tiny", UNIVARIATE, f"Tiny_{split}.ts")
    monkeypatch.setattr(ucr, "carrier_data_dir", lambda task, problem: tmp_path)
    raw = load_archive_task("tiny", TINY)
    assert raw.y_train.tolist() == raw.y_test.tolist() == [2, 1, 0]
    assert raw.source == "file:aeon/datasets/data/Tiny/Tiny"
    wrong = {
        "input_shape": ((1, 5), r"expected series of shape \(3, 1, 5\)"),
        "num_classes": (4, r"and 4 classes"),
        "n_train": (4, r"Tiny_TRAIN\.ts: expected series of shape \(4, 1, 4\)"),
    }
    for field, (value, message) in wrong.items():
        with pytest.raises(DataError, match=message):
            load_archive_task("tiny", dataclasses.replace(TINY, **{field: value}))
    _write(tmp_path / "Tiny", UNIVARIATE.replace("true 1 2 10", "true 1 2 10 11"), "Tiny_TEST.ts")
    with pytest.raises(DataError, match="declare different classes"):
        load_archive_task("tiny", TINY)


# ------------------------------------------------------------------- the shipped archive

# As the archives document them, not as the loader reads them:
# OSULeaf, UCR 2018 DataSummary: Image, 200 train, 242 test, 6 classes, length 427,
#   univariate, z-normalised.
# JapaneseVowels, UEA 2018 (Bagnall et al.) and the file's description: 270 train,
#   370 test, 12 dimensions, 9 classes (speakers); 30 training utterances per speaker, 24 to
#   88 test utterances per speaker; raw lengths 7 to 29.
DOCUMENTED = {
    "osuleaf": {"n_train": 200, "n_test": 242, "channels": 1, "classes": 6},
    "japanesevowels": {"n_train": 270, "n_test": 370, "channels": 12, "classes": 9},
}
LENGTH = {"osuleaf": 427, "japanesevowels": 25}  # japanesevowels: aeon's _eq copy's header


@functools.cache
def _shipped(name: str) -> RawTask:
    return TASKS.get(name).loader(Path("unused"), "mini", 0)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_shipped_task_matches_the_archive_documentation(name):
    raw = _shipped(name)
    doc = DOCUMENTED[name]
    assert raw.x_train.shape == (doc["n_train"], doc["channels"], LENGTH[name])
    assert raw.x_test.shape == (doc["n_test"], doc["channels"], LENGTH[name])
    assert raw.x_train.dtype == raw.x_test.dtype == np.float32
    assert raw.y_train.dtype == raw.y_test.dtype == np.int64
    assert raw.num_outputs == doc["classes"]
    for y in (raw.y_train, raw.y_test):  # every class 0..K-1 occurs in both splits
        assert set(np.unique(y)) == set(range(doc["classes"]))
    assert np.isfinite(raw.x_train).all() and np.isfinite(raw.x_test).all()
    spec = TASKS.get(name)
    assert (spec.modality, spec.output, spec.loss, spec.metric) == (
        "1d", "classification", "cross_entropy", "error_rate")
    assert spec.input_shape == raw.x_train.shape[1:] and spec.num_outputs == doc["classes"]
    assert spec.has_mini and spec.data_files == ()
    data = carve_validation(raw, 0.1, seed=0)
    n_val = round(doc["n_train"] * 0.1)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (
        doc["n_train"] - n_val, n_val, doc["n_test"])


def test_japanese_vowels_speaker_counts_as_documented():
    raw = _shipped("japanesevowels")
    assert np.bincount(raw.y_train).tolist() == [30] * 9
    counts = np.bincount(raw.y_test)
    assert counts.min() == 24 and counts.max() == 88
    # Channel order as in the file's first case (channels split at ':'; read with `sed`).
    np.testing.assert_array_equal(raw.x_train[0, :, 0], np.float32([
        1.860936, -0.207383, 0.261557, -0.214562, -0.171253, -0.118167, -0.277557, 0.025668,
        0.126701, -0.306756, -0.213076, 0.088728]))
    np.testing.assert_array_equal(raw.x_train[0, [0, 11], -1], np.float32([1.371367, -0.131898]))
    assert raw.y_train[0] == 0  # label "1" -> index 0


def test_osuleaf_values_and_labels_as_in_the_file():
    """First/last values and labels as printed in the shipped .ts files (read with `sed`)."""
    raw = _shipped("osuleaf")
    train, test = raw.x_train[:, 0], raw.x_test[:, 0]
    np.testing.assert_array_equal(train[0, :3], np.float32([0.55067091, 0.46471588, 0.37526084]))
    np.testing.assert_array_equal(train[0, -2:], np.float32([0.40678533, 0.50921864]))
    assert raw.y_train[0] == 5  # label "6" -> index 5
    np.testing.assert_array_equal(test[0, -2:], np.float32([1.1790214, 1.262479]))
    assert raw.y_test[0] == 4  # label "5" -> index 4
    # The archive's z-normalisation (so the loader adds none): mean 0, sample std 1.
    for x in (train.astype(np.float64), test.astype(np.float64)):
        np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-6)
        np.testing.assert_allclose(x.std(axis=1, ddof=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_both_scales_read_the_same_files_and_others_are_refused(name):
    loader = TASKS.get(name).loader
    paper, mini = loader(Path("a"), "paper", 0), loader(Path("b"), "mini", 1)
    np.testing.assert_array_equal(paper.x_test, mini.x_test)
    np.testing.assert_array_equal(paper.y_train, mini.y_train)
    with pytest.raises(ValueError, match="Valid scales: mini, paper"):
        loader(Path("unused"), "tiny", 0)


def test_real_unequal_length_archive_file_is_refused():
    """The raw JapaneseVowels (UEA): lengths 7 to 29 (archive documentation) -> DataError."""
    raw = dataclasses.replace(ucr.JAPANESE_VOWELS, stem="JapaneseVowels")
    message = r"JapaneseVowels_TEST\.ts: unequal series lengths \(7 to 29\)"
    with pytest.raises(DataError, match=message):
        ucr.load_archive_split("japanesevowels", raw, "TEST")
