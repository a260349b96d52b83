"""Published numbers to compare with: MoNA's Tables 2-5, as printed, each entry with its source.

MoNA (Ma et al., "Learning Modality Knowledge Alignment for Cross-Modality Transfer", ICML 2024,
arXiv 2406.18864) reports test errors on NAS-Bench-360 (Table 2: seven ways of fine-tuning,
ORCA's row being ORCA's own published result), with three vision backbones (Table 3), on
PDEBench (Table 4, ORCA's row again ORCA's published one) and on three other data sets
(Table 5). The tables are kept below as printed (``_Table`` rows hold the printed cells), so
``tests/test_published.py`` can check every cell against the paper's text; ``ENTRIES`` is the
flat list, one ``Published`` per cell.

Names: the papers' method, task and backbone names map onto the registered ones through
``METHOD_NAMES``, ``TASK_NAMES`` and ``BACKBONE_NAMES``; ``None`` there marks a name we do not
implement (FNO, PINN, U-Net; AudioSet-20k, ESC50, UCF101; Table 5's backbone, which the paper
does not state). Such entries keep the printed name and are never matched by ``lookup``.

Units: every metric of ours is in the unit the paper prints (0-1 error in %, relative L2,
MAE8 in Angstrom, 1 - AUROC, 1 - mAP, 1 - F1 and nRMSE as fractions), so no value is converted;
``UNIT_METRICS`` says which of our metrics each printed unit is, and the tests check it for
every matched task.

Not here: MoNA's Table 1 (its ORCA and MoNA rows equal Table 2's; the other rows, hand-designed,
NAS and general-purpose networks, are methods we do not implement) and Tables 6-7 (ablations,
GPU hours). PaRe (Cai et al., arXiv 2406.09003) appeared after MoNA, which therefore quotes
none of its numbers, and PaRe's own tables are not among the papers this project works from:
there is no published value for ``pare`` here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MONA = "MoNA (Ma et al., ICML 2024, arXiv 2406.18864)"
ORCA = "ORCA (Shen et al., ICML 2023, arXiv 2302.05738)"

#: Printed method name -> registered method (None: not implemented here).
METHOD_NAMES: dict[str, str | None] = {
    "Train-from-scratch": "scratch",  # Table 2: the encoder trained from random weights
    "From scratch": "scratch",  # Table 5's name for the same baseline
    "Finetuning": "finetune",  # vanilla fine-tuning, Eq. (1): the embedder starts random
    "Finetuning++": "finetune++",  # "initializes the target embedder using source embedder weights"
    "Frozen-encoder": "frozen",  # "keeps the pretrained weight frozen during finetuning"
    "ORCA": "orca",
    "Emb": "emb",  # §2.2: embedder warm-up on the task loss, then fine-tuning
    "MoNA": "mona",
    "PINN": None,
    "FNO": None,
    "U-Net": None,
}

#: Printed task name -> registered task (None: not registered here).
TASK_NAMES: dict[str, str | None] = {
    "CIFAR-100": "cifar100",
    "Spherical": "spherical",
    "Darcy Flow": "darcyflow",  # NAS-Bench-360's Darcy flow (relative L2), not PDEBench's
    "PSICOV": "psicov",
    "Cosmic": "cosmic",
    "NinaPro": "ninapro",
    "FSD50K": "fsd50k",
    "FSD": "fsd50k",  # Table 3's header
    "ECG": "ecg",
    "Satellite": "satellite",
    "DeepSEA": "deepsea",
    "Advection 1D": "advection",
    "Burgers 1D": "burgers",
    "Diffusion-Reaction 1D": "diffusion-reaction-1d",
    "Diffusion-Sorption 1D": "diffusion-sorption",
    "Navier-Stokes 1D": "navier-stokes-1d",
    "Darcy-Flow 2D": "darcy",  # PDEBench's 2D Darcy flow (nRMSE)
    "Shallow-Water 2D": "shallow-water",
    "Diffusion-Reaction 2D": "diffusion-reaction-2d",
    "AudioSet-20k": None,
    "ESC50": None,
    "UCF101": None,
}

SWIN = "Swin-Base (88M) IN-22K"
ROBERTA = "RoBERTa"
#: Printed backbone (model and pretraining data as Table 3 prints them; §4 for Tables 2 and 4:
#: "RoBERTa ... and Swin Transformer ... for 1D and 2D tasks respectively") -> registered backbone.
BACKBONE_NAMES: dict[str, str | None] = {
    SWIN: "swin_base_patch4_window7_224.ms_in22k",
    ROBERTA: "roberta-base",
    # MoNA cites Dosovitskiy et al. and says ImageNet-22K without naming a checkpoint; timm's
    # ImageNet-21k ViT-B/16 is AugReg's (Steiner et al.), the nearest one registered here.
    "ViT-Base (86M) IN-22K": "vit_base_patch16_224.augreg_in21k",
    "CLIP ViT-B/16 (86M) WIT-400M": "vit_base_patch16_clip_224.openai",
    "not stated": None,  # Table 5
}

#: Printed unit -> our metric(s) in that unit (``TaskSpec.metric``). No value is converted.
UNIT_METRICS: dict[str, tuple[str, ...]] = {
    "0-1 error (%)": ("error_rate",),  # ours: 100 * mean(argmax != y)
    "relative $l_2$": ("relative_l2",),  # a fraction in both (7.28E-3)
    "MAE8": ("mae8",),  # Angstrom in both
    "1-AUROC": ("one_minus_auroc_pixels", "one_minus_auroc_labels"),
    "1-mAP": ("one_minus_map",),
    "1-F1 score": ("one_minus_macro_f1",),
    "nRMSE": ("nrmse",),
}


@dataclass(frozen=True)
class Published:
    """One published number: a cell of a paper's table.

    ``method``, ``task`` and ``backbone`` are registered names where ``*_matched``, else the
    names as printed. ``value`` is ``float(printed)``, in the unit of our metric (``unit`` is
    the paper's; see ``UNIT_METRICS``).
    """

    paper: str
    table: str  # "Table 2"
    method: str
    task: str
    backbone: str
    value: float
    printed: str  # the cell as printed, e.g. "7.28E-3"
    unit: str  # as printed, e.g. "0-1 error (%)"
    method_matched: bool
    task_matched: bool
    backbone_matched: bool
    quoted_from: str = ""  # the paper a number comes from when it is not the citing one
    note: str = ""

    @property
    def matched(self) -> bool:
        """Method, task and backbone are all registered here."""
        return self.method_matched and self.task_matched and self.backbone_matched

    @property
    def source(self) -> str:
        """Short citation for a table cell, e.g. "MoNA Table 2" (ORCA's rows: "ORCA via MoNA Table 2")."""
        short = self.paper.split(" ")[0]
        return f"{self.quoted_from.split(' ')[0]} via {short} {self.table}" if self.quoted_from else f"{short} {self.table}"


@dataclass(frozen=True)
class _Column:
    task: str  # as printed
    unit: str  # as printed
    backbone: str = ""  # printed backbone key (BACKBONE_NAMES) when the table has no backbone column


@dataclass(frozen=True)
class _Row:
    method: str  # as printed (without the bold markup)
    cells: tuple[str, ...]  # as printed, in the header's column order; "–": not reported
    backbone: str = ""  # printed backbone key when the table has a backbone column (Table 3)


@dataclass(frozen=True)
class _Table:
    paper: str
    table: str
    caption: str  # as printed (the tests find the table in the paper's text by it)
    units_in_header: bool  # the header cells read "<task> <unit>"; else the unit is the caption's
    columns: tuple[_Column, ...]
    rows: tuple[_Row, ...]
    quoted: dict  # printed method -> the paper its row comes from
    note: str = ""


def _cols(*spec: tuple[str, str, str]) -> tuple[_Column, ...]:
    return tuple(_Column(*s) for s in spec)


def _row(method: str, cells: str, backbone: str = "") -> _Row:
    return _Row(method, tuple(cells.split()), backbone)


_ERR, _L2, _MAE8, _AUROC, _MAP, _F1 = "0-1 error (%)", "relative $l_2$", "MAE8", "1-AUROC", "1-mAP", "1-F1 score"

TABLES: tuple[_Table, ...] = (
    _Table(
        MONA, "Table 2", "Comparing various cross-modal transfer methods on NAS-Bench-360.", True,
        _cols(("CIFAR-100", _ERR, SWIN), ("Spherical", _ERR, SWIN), ("Darcy Flow", _L2, SWIN),
              ("PSICOV", _MAE8, SWIN), ("Cosmic", _AUROC, SWIN), ("NinaPro", _ERR, SWIN),
              ("FSD50K", _MAP, SWIN), ("ECG", _F1, ROBERTA), ("Satellite", _ERR, ROBERTA),
              ("DeepSEA", _AUROC, ROBERTA)),
        (
            # Darcy Flow 8.00E-2: as printed (ten times Table 1's hand-designed 8.00E-3).
            _row("Train-from-scratch", "50.87 76.67 8.00E-2 5.09 0.50 9.96 0.75 0.42 12.38 0.39"),
            _row("Finetuning", "7.67 55.26 7.34E-3 1.92 0.17 8.35 0.63 0.44 13.86 0.51"),
            _row("Finetuning++", "6.60 33.17 7.50E-3 1.91 0.168 8.00 0.63 0.35 12.73 0.38"),
            _row("Frozen-encoder", "10.02 59.62 6.84E-3 3.43 0.481 35.20 0.72 0.37 19.71 0.36"),
            _row("ORCA", "6.53 29.85 7.28E-3 1.91 0.152 7.54 0.56 0.28 11.59 0.29"),
            _row("Emb", "6.52 28.76 7.50E-3 1.35 0.139 7.74 0.56 0.28 11.40 0.29"),
            _row("MoNA", "6.48 27.13 6.80E-3 0.99 0.121 7.28 0.55 0.27 11.13 0.28"),
        ),
        quoted={"ORCA": ORCA},
        note="full training sets; 2D tasks on Swin-Base, 1D tasks on RoBERTa (§4)",
    ),
    _Table(
        MONA, "Table 3", "Performance Comparison ( $\\downarrow$ ) with Different Backbones.", True,
        _cols(("Spherical", _ERR, ""), ("NinaPro", _ERR, ""), ("FSD", _MAP, "")),
        (
            _row("Finetuning", "47.24 15.63 0.74", "ViT-Base (86M) IN-22K"),
            _row("ORCA", "36.52 8.78 0.63", "ViT-Base (86M) IN-22K"),
            _row("MoNA", "33.34 8.00 0.62", "ViT-Base (86M) IN-22K"),
            _row("Finetuning", "57.47 13.81 0.77", "CLIP ViT-B/16 (86M) WIT-400M"),
            _row("ORCA", "43.12 8.50 0.69", "CLIP ViT-B/16 (86M) WIT-400M"),
            _row("MoNA", "41.35 7.59 0.67", "CLIP ViT-B/16 (86M) WIT-400M"),
            # The Swin-Base rows repeat Table 2's Finetuning, ORCA and MoNA values.
            _row("Finetuning", "55.26 8.35 0.63", SWIN),
            _row("ORCA", "29.85 7.54 0.56", SWIN),
            _row("MoNA", "27.13 7.28 0.55", SWIN),
        ),
        quoted={},
        note="backbone, as printed: model (size) and pretraining data",
    ),
    _Table(
        MONA, "Table 4", "Normalized Root Mean Squared Errors (nRMSEs,  $\\downarrow$ ) on 8 PDEBench tasks.", False,
        _cols(("Advection 1D", "nRMSE", ROBERTA), ("Burgers 1D", "nRMSE", ROBERTA),
              ("Diffusion-Reaction 1D", "nRMSE", ROBERTA), ("Diffusion-Sorption 1D", "nRMSE", ROBERTA),
              ("Navier-Stokes 1D", "nRMSE", ROBERTA), ("Darcy-Flow 2D", "nRMSE", SWIN),
              ("Shallow-Water 2D", "nRMSE", SWIN), ("Diffusion-Reaction 2D", "nRMSE", SWIN)),
        (
            _row("PINN", "0.67 0.36 0.006 0.15 0.72 0.18 0.083 0.84"),
            _row("FNO", "0.011 0.0031 0.0014 0.0017 0.068 0.22 0.0044 0.12"),
            _row("U-Net", "1.1 0.99 0.08 0.22 – – 0.017 1.6"),  # "–": not reported, no entry
            _row("ORCA", "0.0098 0.0120 0.0030 0.0016 0.062 0.081 0.0060 0.820"),
            _row("MoNA", "0.0088 0.0114 0.0028 0.0016 0.054 0.079 0.0057 0.818"),
        ),
        quoted={"ORCA": ORCA},
        note="PINN, FNO and U-Net: PDEBench's baselines; 1D PDEs on RoBERTa, 2D on Swin-Base (§4)",
    ),
    _Table(
        MONA, "Table 5", "Prediction errors ( $\\downarrow$ ) on three classic benchmarks from different modalities.", True,
        _cols(("AudioSet-20k", _MAP, "not stated"), ("ESC50", _ERR, "not stated"), ("UCF101", _ERR, "not stated")),
        (
            _row("From scratch", "0.634 30.00 57.62"),
            _row("Finetuning", "0.541 27.50 26.51"),
            _row("ORCA", "0.538 12.75 16.86"),
            _row("MoNA", "0.523 9.64 13.45"),
        ),
        quoted={},
        note="tasks not registered here",
    ),
)

NOT_REPORTED = "–"  # an empty cell, as printed (U+2013)


def _entries() -> tuple[Published, ...]:
    out = []
    for t in TABLES:
        for row in t.rows:
            if len(row.cells) != len(t.columns):
                raise ValueError(f"{t.table} row {row.method!r}: {len(row.cells)} cells for {len(t.columns)} columns")
            for col, cell in zip(t.columns, row.cells):
                if cell == NOT_REPORTED:
                    continue
                printed_backbone = row.backbone or col.backbone
                method, task, backbone = (METHOD_NAMES[row.method], TASK_NAMES[col.task],
                                          BACKBONE_NAMES[printed_backbone])
                out.append(Published(
                    paper=t.paper, table=t.table, method=method or row.method, task=task or col.task,
                    backbone=backbone or printed_backbone, value=float(cell), printed=cell, unit=col.unit,
                    method_matched=method is not None, task_matched=task is not None,
                    backbone_matched=backbone is not None, quoted_from=t.quoted.get(row.method, ""),
                    note=t.note))
    return tuple(out)


ENTRIES: tuple[Published, ...] = _entries()


def lookup(method: str, task: str, backbone: str | None = None) -> list[Published]:
    """The matched entries for a registered method and task (and backbone, if given), in table order.

    >>> [(e.table, e.printed) for e in lookup("mona", "spherical")]
    [('Table 2', '27.13'), ('Table 3', '33.34'), ('Table 3', '41.35'), ('Table 3', '27.13')]
    >>> [e.printed for e in lookup("orca", "darcyflow", "swin_base_patch4_window7_224.ms_in22k")]
    ['7.28E-3']
    """
    return [e for e in ENTRIES if e.matched and e.method == method and e.task == task
            and (backbone is None or e.backbone == backbone)]


def reference(method: str, task: str, backbone: str) -> Published | None:
    """The one published number to set beside ours: the first match in table order (Table 2
    before Table 3, whose Swin-Base rows repeat it), or None."""
    found = lookup(method, task, backbone)
    return found[0] if found else None


NOT_COMPARABLE = "embedded default: not comparable with published numbers"
NOT_PUBLISHED = "no published value"


@dataclass(frozen=True)
class Versus:
    """Ours beside the published number: ``delta`` = ours - published (NaN where not shown)."""

    published: float
    printed: str  # the published cell as printed ("" where none is shown)
    source: str  # e.g. "MoNA Table 2"
    delta: float
    note: str  # NOT_COMPARABLE at mini scale, NOT_PUBLISHED at paper scale without a match, else ""


def versus(method: str, task: str, backbone: str, scale: str, ours: float) -> Versus:
    """The published value for a row of ours and the difference, at paper scale only.

    At mini scale (the embedded default: other data, a small backbone, short runs) nothing is
    set beside ours: the note says the numbers are not comparable.

    >>> v = versus("mona", "spherical", "swin_base_patch4_window7_224.ms_in22k", "paper", 28.13)
    >>> (v.printed, v.source, round(v.delta, 2))
    ('27.13', 'MoNA Table 2', 1.0)
    >>> versus("mona", "spherical", "tf_efficientnet_lite0", "mini", 61.9).note
    'embedded default: not comparable with published numbers'
    """
    if scale != "paper":
        return Versus(math.nan, "", "", math.nan, NOT_COMPARABLE)
    ref = reference(method, task, backbone)
    if ref is None:
        return Versus(math.nan, "", "", math.nan, NOT_PUBLISHED)
    return Versus(ref.value, ref.printed, ref.source, ours - ref.value, "")


#: ``Versus`` as table columns (``tuner.report`` and ``tuner.compare`` rows carry these).
COLUMNS = ("published", "published_cell", "published_source", "published_delta", "published_note")


def columns(v: Versus) -> dict:
    """``v`` as the row columns ``COLUMNS``."""
    return dict(zip(COLUMNS, (v.published, v.printed, v.source, v.delta, v.note)))


def cells(row, decimals: int) -> tuple[str, str]:
    """The "published" and "Δ vs published" cells of a table row that has ``COLUMNS``.

    >>> v = versus("orca", "darcyflow", "swin_base_patch4_window7_224.ms_in22k", "paper", 0.00750)
    >>> cells(columns(v), 5)
    ('7.28E-3 (ORCA via MoNA T2)', '+0.00022')
    >>> cells(columns(versus("pare", "spherical", "tf_efficientnet_lite0", "mini", 69.5)), 2)
    ('not comparable (mini)', '—')
    """
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    note, delta = get("published_note"), get("published_delta")
    if note == NOT_COMPARABLE:
        return "not comparable (mini)", "—"
    if note:
        return note, "—"
    source = get("published_source").replace("Table ", "T")
    return f"{get('published_cell')} ({source})", (f"{delta:+.{decimals}f}" if not math.isnan(delta) else "—")
