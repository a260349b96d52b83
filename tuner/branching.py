"""Branching search (``--branching K``): stage 1 trained for K configurations, stage 2 searched from each.

A plain TPE+ASHA sweep of a two-stage method pays a whole stage 1 in every trial: ASHA's clock
is stage-2 epochs, so stage 1 is never pruned, and TPE's continuous draws never repeat a stage-1
configuration the stage-1 cache could share. Here the searcher draws K stage-1 configurations
(the *roots*, each run at every one of ``--seeds`` seeds); every later trial is a *branch*: its
stage-1 dimensions and seed are one root's (fixed in its Optuna trial with ``enqueue_trial``),
its stage-2 dimensions are TPE's, and its stage 1 is the root's, read from the stage-1 cache
(``trainables.stage1_cache``) instead of trained. ASHA prunes across all branches at equal
stage-2 epochs: successive halving over trials that share a prefix.

Order of trials:

1. the roots first: K configurations from TPE, each at the first seed, then at the others;
2. a branch only from a root whose stage 1 has ended (so its cache entry exists): while no root
   is ready ``suggest`` returns None and Tune asks again later. Choose K x seeds >= the trials
   that run at once, or slots wait while the roots train their stage 1;
3. the next branch goes to the ready root with the fewest trials so far (round robin; ties to
   the earlier root), so every stage-1 configuration is compared on as many stage-2 draws;
4. a root that ends inside stage 1 (error, divergence) gets no branches; when no root is left
   that can become ready, a new configuration is drawn.

When to use it: a method with a stage 1 (Emb, ORCA, MoNA) when stage 1 is a large share of a
trial's cost (MoNA's stage-1 step costs ~3x a plain step on the embedded default) and a
search over stage-2 dimensions with few stage-1 configurations to try, e.g. a stage-2 learning
rate search with λ held (``--set lambda=0.5 --branching 1``). It searches stage 1 coarsely (K
points): to map stage-1 sensitivity use ``--sensitivity``; to search stage 1 finely, plain
TPE+ASHA. Cost in samples: every result's ``samples_total`` counts a reused stage 1 as zero.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from tuner.optuna_search import PruneAwareOptunaSearch

log = logging.getLogger(__name__)


@dataclass
class Root:
    """One stage-1 configuration at one seed, trained once by its first trial."""

    params: dict  # the trial's stage-1 dimensions (every key of the method's stage1_keys it has)
    seed: int
    trial_id: str
    stage1_epochs: int
    ready: bool = False  # its stage 1 ended: branches read it from the cache
    failed: bool = False  # it ended inside stage 1: no branches
    trials: int = 1  # trials on this stage 1, the root's own included


class BranchingOptunaSearch(PruneAwareOptunaSearch):
    """``PruneAwareOptunaSearch`` that draws K stage-1 configurations and branches stage 2 from them.

    Args:
        stage1_keys: the config keys the method's stage 1 reads (``TwoStageTrainable.stage1_keys``);
            a branch's values of them are its root's.
        configs: K, the number of stage-1 configurations.
        seeds: the trial seeds every configuration runs at.
        **kwargs: ``PruneAwareOptunaSearch``'s (space, metric, mode, sampler, ...).
    """

    def __init__(self, stage1_keys: tuple[str, ...], configs: int, seeds: tuple[int, ...], **kwargs):
        super().__init__(**kwargs)
        if configs < 1 or not seeds:
            raise ValueError(f"branching needs >= 1 stage-1 configuration and >= 1 seed, got {configs}, {seeds}")
        self.stage1_keys, self.configs, self.seeds = tuple(stage1_keys), configs, tuple(seeds)
        self.roots: list[Root] = []
        self.root_of: dict[str, int] = {}  # trial id -> index in roots (roots and branches)
        self.waiting: list[tuple[dict, int]] = []  # (stage-1 params, seed) of roots still to start
        self.drawn = 0  # stage-1 configurations drawn

    def suggest(self, trial_id: str) -> dict | None:
        if self.waiting:
            params, seed = self.waiting.pop(0)
            return self._start_root(trial_id, params, seed)
        if self.drawn < self.configs or not any(not r.failed for r in self.roots):
            return self._draw_configuration(trial_id)
        ready = [i for i, r in enumerate(self.roots) if r.ready and not r.failed]
        if not ready:
            return None  # every root still in stage 1: Tune asks again
        index = min(ready, key=lambda i: self.roots[i].trials)
        return self._branch(trial_id, index)

    def _draw_configuration(self, trial_id: str) -> dict | None:
        """A new stage-1 configuration from TPE, at the first seed; its other seeds wait in line."""
        config = super().suggest(trial_id)
        params = {k: v for k, v in config.items() if k in self.stage1_keys}
        self.drawn += 1
        self.waiting.extend((params, seed) for seed in self.seeds[1:])
        self._add_root(trial_id, params, self.seeds[0], config)
        return {**config, "seed": self.seeds[0]}

    def _start_root(self, trial_id: str, params: dict, seed: int) -> dict:
        config = self._suggest_with(trial_id, params)
        self._add_root(trial_id, params, seed, config)
        return {**config, "seed": seed}

    def _branch(self, trial_id: str, index: int) -> dict:
        root = self.roots[index]
        config = self._suggest_with(trial_id, root.params)
        root.trials += 1
        self.root_of[trial_id] = index
        return {**config, "seed": root.seed}

    def _suggest_with(self, trial_id: str, params: dict) -> dict:
        """TPE's suggestion with ``params`` fixed (Optuna samples the rest of an enqueued trial)."""
        self._ot_study.enqueue_trial(params, skip_if_exists=False)
        config = super().suggest(trial_id)
        differ = {k: (config.get(k), v) for k, v in params.items() if config.get(k) != v}
        if differ:  # a held value (PartialFixedSampler) wins over the enqueued one: a bug if it happens
            raise RuntimeError(f"branch {trial_id}: stage-1 values not taken from its root: {differ}")
        return config

    def _add_root(self, trial_id: str, params: dict, seed: int, config: dict) -> None:
        self.root_of[trial_id] = len(self.roots)
        self.roots.append(Root(params=params, seed=seed, trial_id=trial_id,
                               stage1_epochs=int(config["stage1_epochs"])))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        root = self._own_root(trial_id)
        if root is not None and not root.ready and stage1_ended(result, root.stage1_epochs):
            root.ready = True
            log.info("stage 1 of trial %s ready: branching from it", trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result=result, error=error)
        root = self._own_root(trial_id)
        if root is not None and not root.ready:
            root.failed = True
            log.warning("trial %s ended inside stage 1: no branches from its stage-1 configuration", trial_id)

    def _own_root(self, trial_id: str) -> Root | None:
        """The root ``trial_id`` trains (None for a branch or an unknown trial)."""
        index = self.root_of.get(trial_id)
        if index is None or self.roots[index].trial_id != trial_id:
            return None
        return self.roots[index]

    def summary(self) -> list[dict]:
        """The roots as plain dicts (params, seed, trial id, state, trials on it)."""
        return [dataclasses.asdict(r) for r in self.roots]


def stage1_ended(result: dict, stage1_epochs: int) -> bool:
    """Whether ``result`` is (or comes after) the last stage-1 epoch: the trial has then published
    its stage 1 to the cache (``TwoStageTrainable._record_stage1``; not after a divergence)."""
    if result.get("diverged", False):
        return False
    return result.get("stage") == 2 or (result.get("stage") == 1 and result.get("stage_epoch", 0) >= stage1_epochs)


def waiting_slots_message(configs: int, seeds: int, concurrency: int | None) -> str:
    """A warning when fewer roots (K x seeds) than trials run at once: the other slots wait until
    a root's stage 1 ends (rule 2 above); '' when none wait (or concurrency is unlimited).

    >>> waiting_slots_message(1, 1, 2)[:52]
    '--branching 1 x --seeds 1 = 1 stage-1 root(s) for 2 '
    >>> waiting_slots_message(2, 1, 2)
    ''
    """
    roots = configs * seeds
    if not concurrency or roots >= concurrency:
        return ""
    return (f"--branching {configs} x --seeds {seeds} = {roots} stage-1 root(s) for {concurrency} trials at once: "
            f"{concurrency - roots} slot(s) wait until a root's stage 1 ends (branches start from a trained "
            f"root); K x seeds >= {concurrency} keeps every slot busy")
