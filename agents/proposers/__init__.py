"""The proposer registry: who decides what a study tries next.

A new proposer is one file in this folder (a `Proposer` subclass, see `base.py`) and one
`PROPOSERS.register` line below. The composition root, config validation (`proposer = ...` and the
proposer's own section of discover.toml), the CLI's help, the trust policy and the documented
`study.toml` all read this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discover.experiments.registry import Registry

if TYPE_CHECKING:  # kept out of the import, so that help texts can list the names cheaply
    from discover.agents.proposers.base import Proposer

PROPOSERS: Registry[type[Proposer]] = Registry("proposer")
PROPOSERS.register(
    "evolution",
    "discover.agents.proposers.evolution:EvolutionProposer",
    "regularized evolution over the motif grammar (no LLM needed)",
)
PROPOSERS.register(
    "random",
    "discover.agents.proposers.random_search:RandomProposer",
    "the motif grammar sampled uniformly: the control that search efficiency is measured against",
)
PROPOSERS.register(
    "surrogate",
    "discover.agents.proposers.surrogate:SurrogateProposer",
    "model-based search over the motif grammar: a tree ensemble fitted on the designs measured so far",
)
PROPOSERS.register(
    "tpe",
    "discover.agents.proposers.tpe:TPEProposer",
    "model-based search over the motif grammar: Optuna's tree-structured Parzen estimator",
)
PROPOSERS.register(
    "llm",
    "discover.agents.proposers.llm:LLMProposer",
    "researcher, coder and analyst agents over an OpenAI-compatible endpoint",
)


def trusted_origins() -> frozenset[str]:
    """Origins of designs that discover rendered itself: the process backend may run them."""
    return frozenset(proposer.origin for _, proposer in PROPOSERS.items() if proposer.trusted)
