"""``tuner.published``: MoNA's tables as printed, checked cell by cell against the paper's text."""
from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from trainables.registry import get_task, list_backbones, list_methods, list_tasks
from tuner import published

PAPER = Path(__file__).resolve().parents[2] / "shared" / "papers" / "001_6deeac1fa0b3cb0e.txt"
needs_paper = pytest.mark.skipif(not PAPER.exists(), reason=f"the MoNA paper's text is not at {PAPER}")


def _paper_table(number: int) -> tuple[str, list[str], list[list[str]]]:
    """(caption, header cells, rows of cells) of "Table <number>." in the paper's text: the
    tab-separated lines after the caption, up to the first blank line after them, with the
    bold markup taken off."""
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}. "))
    body = []
    for line in lines[start + 1:]:
        if not line.strip():
            if body:
                break
            continue
        body.append([re.sub(r"</?b>", "", c).strip() for c in line.split("\t")])
    caption = lines[start][len(f"Table {number}. "):]
    return caption, body[0], body[1:]


def _table(name: str):
    return next(t for t in published.TABLES if t.table == name)


@needs_paper
@pytest.mark.parametrize("number", [2, 3, 4, 5])
def test_every_cell_is_as_the_paper_prints_it(number):
    """An independent read of the text: caption, header (task and unit per column, in order)
    and every row's cells."""
    caption, header, rows = _paper_table(number)
    table = _table(f"Table {number}")
    assert caption == table.caption
    extra = 3 if number == 3 else 1  # Table 3: method, model (size), pretraining data
    assert header[0] == ("Method" if number == 3 else "")
    expected = [f"{c.task} {c.unit}" if table.units_in_header else c.task for c in table.columns]
    assert header[extra:] == expected
    assert len(rows) == len(table.rows)
    for got, row in zip(rows, table.rows):
        assert got[0] == row.method
        if number == 3:
            assert f"{got[1]} {got[2]}" == row.backbone
        assert tuple(got[extra:]) == row.cells, row.method


@needs_paper
def test_table2_mona_row_read_from_the_text():
    """Spot check through ``lookup``: MoNA's Table 2 row, parsed from the text, cell by cell."""
    _, header, rows = _paper_table(2)
    mona = next(r for r in rows if r[0] == "MoNA")
    tasks = ["cifar100", "spherical", "darcyflow", "psicov", "cosmic", "ninapro", "fsd50k", "ecg", "satellite", "deepsea"]
    for task, cell in zip(tasks, mona[1:], strict=True):
        (entry,) = [e for e in published.lookup("mona", task) if e.table == "Table 2"]
        assert entry.value == float(cell) and entry.printed == cell
    assert "Spherical 0-1 error (%)" in header


def test_spot_values_typed_from_the_paper():
    swin = "swin_base_patch4_window7_224.ms_in22k"
    assert published.reference("mona", "spherical", swin).value == 27.13
    assert published.reference("orca", "darcyflow", swin).value == pytest.approx(7.28e-3)
    assert published.reference("orca", "darcyflow", swin).quoted_from.startswith("ORCA")
    assert published.reference("emb", "psicov", swin).value == 1.35
    assert published.reference("finetune++", "ecg", "roberta-base").value == 0.35
    assert published.reference("mona", "navier-stokes-1d", "roberta-base").value == 0.054
    assert published.reference("orca", "diffusion-reaction-2d", swin).value == 0.820
    assert published.reference("finetune", "ninapro", "vit_base_patch16_clip_224.openai").value == 13.81
    assert published.reference("mona", "fsd50k", "vit_base_patch16_224.augreg_in21k").value == 0.62
    assert published.reference("mona", "spherical", "tf_efficientnet_lite0") is None  # no such row
    assert published.reference("pare", "spherical", swin) is None  # MoNA quotes no PaRe numbers
    assert not published.lookup("orca", "spherical", "roberta-base")  # spherical ran on Swin


def test_names_are_registered_or_marked_unmatched():
    methods, tasks, backbones = set(list_methods()), set(list_tasks()), set(list_backbones())
    for mapping, registered in ((published.METHOD_NAMES, methods), (published.TASK_NAMES, tasks),
                                (published.BACKBONE_NAMES, backbones)):
        for printed, ours in mapping.items():
            assert ours is None or ours in registered, (printed, ours)
    for e in published.ENTRIES:
        assert (e.method in methods) == e.method_matched, e
        assert (e.task in tasks) == e.task_matched, e
        assert (e.backbone in backbones) == e.backbone_matched, e
    for t in published.TABLES:  # every printed name has an explicit mapping (None: unmatched)
        assert {r.method for r in t.rows} <= published.METHOD_NAMES.keys()
        assert {c.task for c in t.columns} <= published.TASK_NAMES.keys()
    unmatched = {e.method for e in published.ENTRIES if not e.method_matched}
    assert unmatched == {"PINN", "FNO", "U-Net"}
    assert {e.task for e in published.ENTRIES if not e.task_matched} == {"AudioSet-20k", "ESC50", "UCF101"}
    assert not published.lookup("PINN", "advection")


def test_units_are_our_metrics_so_nothing_is_converted():
    for e in published.ENTRIES:
        assert e.value == float(e.printed) and math.isfinite(e.value)
        if e.task_matched:
            assert get_task(e.task).metric in published.UNIT_METRICS[e.unit], e


def test_no_duplicate_entry_and_counts():
    keys = Counter((e.paper, e.table, e.method, e.task, e.backbone) for e in published.ENTRIES)
    assert [k for k, n in keys.items() if n > 1] == []
    per_table = Counter(e.table for e in published.ENTRIES)
    # 7 x 10; 9 x 3; 5 x 8 less U-Net's two "–"; 4 x 3
    assert per_table == {"Table 2": 70, "Table 3": 27, "Table 4": 38, "Table 5": 12}


def test_versus_paper_scale_and_mini():
    swin = "swin_base_patch4_window7_224.ms_in22k"
    v = published.versus("mona", "spherical", swin, "paper", 30.0)
    assert (v.published, v.source, v.note) == (27.13, "MoNA Table 2", "") and v.delta == pytest.approx(2.87)
    mini = published.versus("mona", "spherical", "tf_efficientnet_lite0", "mini", 61.5)
    assert mini.note == published.NOT_COMPARABLE and math.isnan(mini.delta) and math.isnan(mini.published)
    none = published.versus("pare", "spherical", swin, "paper", 30.0)
    assert none.note == published.NOT_PUBLISHED and math.isnan(none.delta)
    assert published.cells(published.columns(v), 2) == ("27.13 (MoNA T2)", "+2.87")
