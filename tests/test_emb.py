"""Emb: stage 1 trains the embedder alone on the task loss."""
from __future__ import annotations

import torch
from trial_configs import sample_config

from trainables.registry import get_method


def test_stage1_changes_only_the_embedder(tmp_path):
    config = {**sample_config("emb", tmp_path), "stage1_epochs": 1}
    t = get_method("emb").trainable(config=config)
    frozen = {k: v.clone() for k, v in t.model.state_dict().items() if not k.startswith("embedder.")}
    embedder = {k: v.clone() for k, v in t.model.embedder.state_dict().items()}
    result = t.train()
    assert result["stage"] == 1 and result["stage_name"] == "embedder_warmup"
    for k, v in t.model.state_dict().items():
        if not k.startswith("embedder."):
            assert torch.equal(v, frozen[k]), k  # encoder, predictor, BatchNorm statistics
    assert any(not torch.equal(v, embedder[k]) for k, v in t.model.embedder.state_dict().items())
    assert t.train()["stage"] == 2
