"""Tree-structured Parzen estimator over the grammar (Bergstra et al. 2011), with Optuna's sampler:
the field's standard black-box optimiser, the second model-based arm of `benchmarks/search.py`.

    space       one categorical parameter per slot of the genome, its motifs the choices
    model       Optuna's TPESampler, refitted each proposal on the measured designs as completed
                trials: one density over the best `gamma` share of them, one over the rest
    pick        the sample (of `candidates` drawn from the good density) with the highest ratio of
                the two; a sample the study has tried is marked failed and the sampler asked again

The start (classics, `initial` random designs) and the warm start are `model_based.py`'s; warm-start
points are ordinary trials here (TPE has no per-trial weight).
"""

from __future__ import annotations

import random

from pydantic import Field

from discover.agents.grammar import SLOTS, Genome, canonical, space
from discover.agents.proposers.base import Proposal
from discover.agents.proposers.model_based import Measured, ModelBasedConfig, ModelBasedProposer

ASKS = 20  # samples from the sampler before an untried design is drawn at random instead


class TPEConfig(ModelBasedConfig):
    candidates: int = Field(default=24, ge=1)  # samples of the good density scored per ask


class TPEProposer(ModelBasedProposer):
    name = "tpe"
    origin = "tpe"
    config_section = "tpe"
    config_class = TPEConfig
    config: TPEConfig

    def pick(self, measured: Measured, tried: set[str], rng: random.Random) -> Proposal | None:
        if len(tried) >= len(space()):
            return None
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        categorical = optuna.distributions.CategoricalDistribution
        choices = {slot: categorical(values) for slot, values in SLOTS.items()}
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=0, n_ei_candidates=self.config.candidates, seed=rng.randrange(2**31)
        )
        search = optuna.create_study(direction="maximize", sampler=sampler)
        for genome, fitness in measured + self.prior:
            search.add_trial(
                optuna.trial.create_trial(params=genome.model_dump(), distributions=choices, value=fitness)
            )
        for asked in range(1, ASKS + 1):
            trial = search.ask(choices)
            genome = canonical(Genome(**trial.params))
            if genome.key() not in tried:
                motivation = (
                    f"Model-based pick: a tree-structured Parzen estimator (Optuna) fitted on this "
                    f"study's {len(measured)} measured designs{self.elsewhere()} rates it the likeliest "
                    f"of {self.config.candidates} samples to be among the best"
                    + (f" (ask {asked}: the earlier ones were designs already tried)" if asked > 1 else "")
                    + f". {genome.describe()}."
                )
                return self.proposal(genome, motivation, [])
            search.tell(trial, state=optuna.trial.TrialState.FAIL)  # tried: ask for another
        # Late in a long study the good density covers only tried designs: any untried one will do.
        genome = rng.choice([genome for genome in space() if genome.key() not in tried])
        why = f"the sampler proposed only tried designs {ASKS} times"
        motivation = f"Random pick: {why}. {genome.describe()}."
        return self.proposal(genome, motivation, [])
