"""The model-based proposers (surrogate, tpe): deterministic under a seed, never a design twice,
learn from what they measured, warm-start only from screens of the same task and settings, and
survive kill -9."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from discover.agents.config import StudyConfig
from discover.agents.grammar import CLASSICS, Genome, render, space
from discover.agents.proposers.base import Member
from discover.agents.proposers.model_based import ModelBasedProposer
from discover.agents.proposers.signals import table_path
from discover.agents.proposers.surrogate import SurrogateConfig, SurrogateProposer
from discover.agents.proposers.tpe import TPEProposer
from discover.experiments.contract import code_hash
from discover.experiments.files import write_json_atomic
from discover.experiments.runspec import RunSpec
from discover.knowledge_base.store import KnowledgeBase

from .conftest import discover
from .test_study import TINY_STUDY, query, start, wait_for


def measured(genomes: list[Genome], fitness) -> list[Member]:
    return [Member(f"a{i}", f"d{i}", g, fitness(g)) for i, g in enumerate(genomes)]


def delta_is_good(genome: Genome) -> float:
    return 0.9 if genome.update == "delta" else 0.2


def some_designs(count: int, seed: int = 0) -> list[Genome]:
    return random.Random(seed).sample(space(), count)


MODEL_BASED = [SurrogateProposer, TPEProposer]
each_proposer = pytest.mark.parametrize("kind", MODEL_BASED, ids=lambda kind: kind.name)


@each_proposer
def test_deterministic_under_a_seed(kind: type[ModelBasedProposer]):
    members = measured(some_designs(8), delta_is_good)
    tried = {m.genome.key() for m in members}
    picks = [kind().search(members, tried, random.Random("0/9")).code for _ in range(2)]
    assert picks[0] == picks[1]


@each_proposer
def test_it_samples_at_random_until_initial_designs_are_measured(kind: type[ModelBasedProposer]):
    proposer = kind(kind.config_class(initial=4))
    members = measured(some_designs(3), delta_is_good)
    proposal = proposer.search(members, {m.genome.key() for m in members}, random.Random(1))
    assert proposal.motivation.startswith("Initial design")


@pytest.mark.parametrize(
    "proposer", [SurrogateProposer(SurrogateConfig(exploration=0.0)), TPEProposer()], ids=["surrogate", "tpe"]
)
def test_it_proposes_what_its_measurements_favour_and_never_a_tried_design(proposer: ModelBasedProposer):
    members = measured(some_designs(12), delta_is_good)
    tried = {m.genome.key() for m in members}
    for step in range(5):
        proposal = proposer.search(members, tried, random.Random(step))
        genome = next(g for g in space() if render(g) == proposal.code)
        assert genome.key() not in tried and genome.update == "delta"
        assert "Model-based pick" in proposal.motivation
        tried.add(genome.key())
        members.append(Member(f"b{step}", proposal.name, genome, delta_is_good(genome)))


@each_proposer
def test_it_stops_when_every_design_was_tried(kind: type[ModelBasedProposer]):
    members = measured(some_designs(6), delta_is_good)
    assert kind().search(members, {g.key() for g in space()}, random.Random(0)) is None


@each_proposer
def test_it_finds_the_last_untried_designs(kind: type[ModelBasedProposer]):
    members = measured(some_designs(12), delta_is_good)
    left = {g.key() for g in some_designs(3, seed=1)} - {m.genome.key() for m in members}
    proposal = kind().search(members, {g.key() for g in space()} - left, random.Random(0))
    assert next(g for g in space() if render(g) == proposal.code).key() in left


@each_proposer
def test_warm_start_reads_screens_of_the_same_task_and_settings_from_other_studies_only(tmp_path, kind):
    ours_config = StudyConfig(name="ours", task="mqar", settings={"steps": 300})
    harder = ours_config.with_overrides(settings={"steps": 300, "seq_len": 256})
    with KnowledgeBase(f"sqlite:///{tmp_path / 'kb.db'}") as kb:
        ours, earlier, elsewhere, other_settings = (
            kb.add_study(name, config.model_dump(mode="json")).id
            for name, config in [
                ("ours", ours_config),
                ("earlier", ours_config.with_overrides(seed=3, budget="5h")),  # another seed and budget
                ("other-task", ours_config.with_overrides(task="lm")),
                ("harder", harder),
            ]
        )
        for study, task, genome, fidelity in [
            (earlier, "mqar", CLASSICS["DeltaNet"], "screen"),
            (earlier, "mqar", CLASSICS["GLA"], "full"),  # not a screen
            (elsewhere, "lm", CLASSICS["retention"], "screen"),  # another task
            (other_settings, "mqar", CLASSICS["Gated DeltaNet"], "screen"),  # fitness on another scale
            (ours, "mqar", CLASSICS["linear attention"], "screen"),  # this study's own
        ]:
            name, code = f"{study}-{genome.key()}", render(genome)
            architecture = kb.add_architecture(name=name, code=code, study_id=study, origin="evolution")
            kb.add_run(
                architecture.id, task, study_id=study, fidelity=fidelity, status="succeeded", fitness=0.7
            )
        rows = kb.other_studies_screens("mqar", ours)
        assert {(code, study) for code, _, study, _ in rows} == {
            (code_hash(render(CLASSICS["DeltaNet"])), earlier),
            (code_hash(render(CLASSICS["Gated DeltaNet"])), other_settings),
        }

        proposer = kind(kind.config_class(initial=1))
        study = SimpleNamespace(  # what `propose` reads of a study
            kb=kb, study_id=ours, task=SimpleNamespace(name="mqar"), config=ours_config
        )
        proposal = proposer.propose(study, 5, [], {})
        assert "and 1 screens from 1 earlier studies of the task" in proposal.motivation
        assert proposer.prior == [(CLASSICS["DeltaNet"], 0.7)]
        cold = kind(kind.config_class(initial=1, warm_start=False)).propose(study, 5, [], {})
        assert "earlier studies" not in cold.motivation


def test_with_naswot_the_surrogate_learns_what_no_motif_expresses(tmp_path, monkeypatch):
    """The signal comes from the data cache's table for the study's screening setting; when fitness
    follows it, as it follows no single motif, the model finds designs high on it."""
    monkeypatch.setenv("DISCOVER_CACHE_DIR", str(tmp_path))
    spec = RunSpec.resolve("mqar", {"steps": 10})
    signal = {genome: random.Random(genome.key()).random() for genome in space()}
    table = {code_hash(render(genome)): value for genome, value in signal.items()}
    table_path(spec).parent.mkdir(parents=True)
    write_json_atomic(table_path(spec), table)
    config = StudyConfig(name="ours", task="mqar")
    with KnowledgeBase(f"sqlite:///{tmp_path / 'kb.db'}") as kb:
        ours = kb.add_study("ours", config.model_dump(mode="json")).id
        for genome in some_designs(40):
            architecture = kb.add_architecture(genome.key(), render(genome), "surrogate", study_id=ours)
            kb.add_run(architecture.id, "mqar", study_id=ours, fidelity="screen", status="succeeded",
                       fitness=signal[genome])  # fmt: skip
        study = SimpleNamespace(  # what `propose` reads of a study
            kb=kb, study_id=ours, task=SimpleNamespace(name="mqar"), config=config,
            spec=lambda fidelity: SimpleNamespace(parts=[spec]),
        )  # fmt: skip
        settings = SurrogateConfig(initial=1, exploration=0.0, warm_start=False, naswot=True)
        proposal = SurrogateProposer(settings).propose(study, 41, [], {})
    picked = next(genome for genome in space() if render(genome) == proposal.code)
    assert sum(value > signal[picked] for value in signal.values()) < len(space()) // 20  # its top 5%
    assert "NASWOT" in proposal.motivation


SURROGATE_STUDY = TINY_STUDY + "[surrogate]\ninitial = 2\ntrees = 20\n"


def designs(folder: Path) -> list[tuple[str, str]]:
    return query(folder, "SELECT code_hash, origin FROM architecture WHERE origin = 'surrogate'")


def test_kill_9_then_resume_proposes_nothing_twice(tmp_path, docker_backend):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(SURROGATE_STUDY)
    process = start(
        "run", "-C", str(folder), "--proposer", "surrogate", "--budget", "10m", "--max-experiments", "6"
    )
    try:
        wait_for(lambda: (folder / "knowledge.db").exists() and len(designs(folder)) >= 3, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    before = len(designs(folder))
    again = discover(
        "run",
        "-C",
        str(folder),
        "--resume",
        "--proposer",
        "surrogate",
        "--budget",
        "10m",
        "--max-experiments",
        "2",
    )
    assert again.returncode == 0, again.stdout + again.stderr
    after = designs(folder)
    assert len(after) > before  # the study went on
    assert len({code for code, _ in after}) == len(after)  # and proposed no design twice
    motivations = query(folder, "SELECT motivation FROM architecture WHERE origin = 'surrogate'")
    assert any("Model-based pick" in m for (m,) in motivations)
