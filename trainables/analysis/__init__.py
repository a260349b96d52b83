"""Analysis tools of the MoNA paper (Ma et al., "Learning Modality Knowledge Alignment for
Cross-Modality Transfer", ICML 2024, arXiv 2406.18864): why a transfer works, measured before
and after it runs.

- ``discrepancy``: the approximate modality knowledge discrepancy D(M_s, M_t) of §2.3,
  Def. 2.1, Appendix A.4 and Alg. 2 (Fig. 4), from the complete pretrained source model's
  logits on the target inputs; vectorised over the random experiments.
- ``distortion``: the linear-probe error on the source surrogate of features from an encoder
  (§2.2, Fig. 3): a fine-tuned encoder against the pretrained one shows how much source
  knowledge the fine-tuning kept.

The command line (``python -m tuner.analyze``) reads tasks, backbones, trial checkpoints and
the results store; the functions here only compute.
"""
