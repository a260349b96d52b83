"""The registered methods, one line each: name, Trainable, search space, constants, paper.

A Trainable is named as ``"module:Class"`` and imported only when something needs the class
(a trial, a config check), as Ray Tune's own importer does; looking a method up for its space,
defaults or aliases (plots, reports, the CLI's checks) imports neither torch nor Ray.
Adding a method: its Trainable module, its ``search_spaces`` module and one line here.

The single-stage baselines are one Trainable registered four times with other constants
(``trainables/finetune.py`` has the table).

Every stage-1 method (emb, orca, mona) and PaRe starts from the source-initialised embedder:
ORCA's code copies the pretrained patch embedding before stage 1, MoNA A.2 says its embedders
"follow exactly the designs in ORCA", and PaRe's public code does the same. ``--set
embedder_init=random`` is the ablation, for any method.
"""
from __future__ import annotations

from search_spaces import emb, finetune, mona, orca, pare
from trainables.registry import register_method

MONA = "MoNA (Ma et al., ICML 2024, arXiv 2406.18864)"
BASELINES = f"{MONA} Table 2; ORCA (Shen et al., ICML 2023, arXiv 2302.05738)"
TRAINS_ALL = {"freeze_encoder": False}

register_method("finetune", "trainables.finetune:FinetuneTrainable", finetune, paper=BASELINES,
                constants={"embedder_init": "random", **TRAINS_ALL})
register_method("finetune++", "trainables.finetune:FinetuneTrainable", finetune, paper=BASELINES,
                constants={"embedder_init": "source", **TRAINS_ALL})
register_method("scratch", "trainables.finetune:FinetuneTrainable", finetune, paper=BASELINES,
                constants={"embedder_init": "random", "encoder_init": "random", **TRAINS_ALL})
register_method("frozen", "trainables.finetune:FinetuneTrainable", finetune, paper=BASELINES,
                constants={"embedder_init": "random", "freeze_encoder": True})
register_method("emb", "trainables.emb:EmbTrainable", emb, paper=f"{MONA} §2.2",
                constants={"embedder_init": "source", **TRAINS_ALL})
register_method("orca", "trainables.orca:OrcaTrainable", orca,
                paper="ORCA (Shen et al., ICML 2023, arXiv 2302.05738) §3; OTDD (Alvarez-Melis & Fusi, NeurIPS 2020)",
                constants={"embedder_init": "source", **TRAINS_ALL})
register_method("mona", "trainables.mona:MonaTrainable", mona, paper=f"{MONA} §3.2, Alg. 1, Eq. 2-6",
                constants={"embedder_init": "source", **TRAINS_ALL})
register_method("pare", "trainables.pare:PareTrainable", pare, paper="PaRe (Cai et al., ICML 2024, arXiv 2406.09003) §3",
                constants={"embedder_init": "source", **TRAINS_ALL})
