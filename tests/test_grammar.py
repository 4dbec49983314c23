"""The motif grammar, the offline proposers and the statistics the analyst reports."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch
from sqlmodel import select

from discover.agents.analyst import analyze
from discover.agents.grammar import (
    CLASSICS,
    NAME_CHARS,
    SLOTS,
    Genome,
    canonical,
    difference,
    neighbours,
    readable_name,
    render,
    sample,
    space,
)
from discover.agents.memory import summary
from discover.agents.proposers.base import Member, Proposal
from discover.agents.proposers.evolution import EvolutionConfig, EvolutionProposer, motif_estimates
from discover.agents.proposers.grammar_search import genome_by_code_hash
from discover.agents.proposers.random_search import RandomProposer
from discover.agents.statistics import mean_interval, rank_correlation
from discover.experiments.contract import code_hash, load_mixer_class
from discover.experiments.probes import check
from discover.experiments.tasks import get_task
from discover.knowledge_base.schema import Finding, Run
from discover.knowledge_base.search import SearchFilters
from discover.vetting.static_check import static_check


def test_the_space_holds_thousands_of_distinct_designs():
    designs = space()
    assert len(designs) >= 2000
    assert len({genome.key() for genome in designs}) == len(designs)
    assert len({render(genome) for genome in designs[:200]}) == 200  # distinct genomes, distinct files
    assert all(canonical(genome) == genome for genome in designs)


def test_neighbours_differ_in_exactly_one_motif():
    rng = random.Random(0)
    for _ in range(50):
        parent = sample(rng)
        children = neighbours(parent)
        assert len(set(children)) == len(children) >= 10 and parent not in children
        for child in children:
            assert child in space()
            changed = difference(parent, child)
            # Switching the delta rule on also fixes qk_norm to l2 (canonical form): at most two slots.
            assert len(changed) == 1 or set(changed) == {"update", "qk_norm"}


CLASSIC_NAMES = {
    "linear attention": "add-elu1",
    "retention": "add-fixdecay-rms-silugate",
    "GLA": "add-decay-rms-silugate",
    "DeltaNet": "delta-silu-wgate-conv4-rms",  # unit q/k go without saying for the delta rule
    "Gated DeltaNet": "delta-decay-silu-wgate-conv4-silugate",  # with "rms", one past NAME_CHARS
}


def test_a_design_is_named_by_the_motifs_it_has():
    assert {classic: readable_name(genome) for classic, genome in CLASSICS.items()} == CLASSIC_NAMES
    eight_heads = Genome(short_conv=2, output_gate="none", heads=8)
    assert readable_name(eight_heads) == "delta-decay-wgate-conv2-rms-h8"
    rebuilt = Genome(**CLASSICS["DeltaNet"].model_dump())
    assert rebuilt is not CLASSICS["DeltaNet"] and readable_name(rebuilt) == CLASSIC_NAMES["DeltaNet"]
    names = [readable_name(genome) for genome in space()]
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and len(name) <= NAME_CHARS for name in names)
    assert len(set(names)) > 0.85 * len(names)  # only names shortened to fit can be shared


def test_a_study_keeps_design_names_unique(bare_study):
    """Two designs whose names would be the same (one's output norm was left out to fit) get two
    names in one study; another study's names are its own."""
    kb, gated = bare_study.kb, CLASSICS["Gated DeltaNet"]
    plain = gated.model_copy(update={"output_norm": "none"})
    assert readable_name(plain) == readable_name(gated)

    def store(genome: Genome, study_id: str):
        return kb.add_architecture(readable_name(genome), render(genome), "evolution", study_id=study_id)

    first, second = store(gated, bare_study.study_id), store(plain, bare_study.study_id)
    assert (first.name, second.name) == (readable_name(gated), f"{readable_name(gated)}-2")
    assert kb.find_design(bare_study.study_id, second.name).id == second.id
    assert store(plain, kb.add_study("other").id).name == readable_name(plain)


def test_proposers_know_a_design_by_its_code_not_its_name(bare_study):
    """A study from before readable names (`motif-<key>`) resumes where it stopped: its designs are
    known by their code, so evolution repeats none of them and their motifs are still described."""
    study = bare_study
    for genome in list(CLASSICS.values())[:2]:
        old = study.kb.add_architecture(
            f"motif-{genome.key()}", render(genome), "evolution", study_id=study.study_id
        )
        assert summary(old) == genome.describe()
    proposal = study.proposer.propose(study, 3, [], {})
    assert proposal.name == CLASSIC_NAMES["GLA"] and "the classic GLA" in proposal.motivation


def _mixer(genome: Genome, tmp_path):
    path = tmp_path / f"{genome.key()}.py"
    path.write_text(render(genome))
    return path, load_mixer_class(path)


@pytest.mark.parametrize("index", range(12))
def test_rendered_files_pass_the_static_check_and_match_their_reference(index, tmp_path):
    genome = space()[index * 397 % len(space())]
    source = render(genome)
    assert static_check(source) == []
    assert genome.describe()[:20].lower() in source.lower()  # the docstring says what the design is
    _, mixer_class = _mixer(genome, tmp_path)
    torch.manual_seed(index)
    mixer = mixer_class(64, num_heads=4).double()
    x = torch.randn(2, 100, 64, dtype=torch.double)  # two chunks, the second padded
    torch.testing.assert_close(mixer(x), mixer.forward_reference(x), rtol=1e-9, atol=1e-9)


def test_the_default_design_passes_every_probe(tmp_path):
    path, _ = _mixer(Genome(), tmp_path)
    task = get_task("mqar")
    verdict = check(path, task, task.config({"subquadratic": True}))
    assert verdict.passed, verdict.failures()


def _members(fitness_by_genome: dict[Genome, float]) -> list[Member]:
    return [
        Member(f"id-{genome.key()}", readable_name(genome), genome, value)
        for genome, value in fitness_by_genome.items()
    ]


def _genome(proposal: Proposal) -> Genome:
    return genome_by_code_hash()[code_hash(proposal.code)]


def test_evolution_starts_from_the_classic_designs_then_random_ones():
    proposer = EvolutionProposer(EvolutionConfig(population=10, tournament=10, initial=7))
    rng, members, tried, proposals = random.Random(0), [], set(), []
    for _ in range(7):
        proposal = proposer.search(members, tried, rng)
        assert proposal is not None and proposal.parent_ids == []
        proposals.append(proposal)
        tried.add(_genome(proposal).key())
        members.append(Member(f"id-{proposal.name}", proposal.name, _genome(proposal), 0.5))
    assert [_genome(p) for p in proposals[:5]] == list(CLASSICS.values())
    assert [p.name for p in proposals[:5]] == [readable_name(genome) for genome in CLASSICS.values()]
    assert "the classic DeltaNet" in proposals[3].motivation
    assert all(p.motivation.startswith("Initial population: ") for p in proposals[5:])  # random fill
    child = proposer.search(members, tried, rng)
    assert child is not None and len(child.parent_ids) == 1  # 7 screened: evolution proper


def test_evolution_starts_at_random_then_mutates_a_tournament_winner():
    config = EvolutionConfig(population=10, tournament=10, initial=3, classics=False)
    proposer = EvolutionProposer(config)
    rng = random.Random(1)
    first = proposer.search([], set(), rng)
    assert first is not None and first.origin == "evolution" and first.parent_ids == []

    designs = [sample(random.Random(seed)) for seed in range(5)]
    population = _members({genome: 0.1 * index for index, genome in enumerate(designs)})
    child = proposer.search(population, {genome.key() for genome in designs}, rng)
    assert child is not None
    best = designs[-1]  # the tournament covers the whole population: the fittest wins
    assert child.parent_ids == [f"id-{best.key()}"]
    assert len(difference(best, _genome(child))) in (1, 2)
    assert f"Mutation of {readable_name(best)} " in child.motivation


def test_evolution_ignores_failed_members_and_ages_out_the_oldest():
    config = EvolutionConfig(population=2, tournament=2, initial=1, classics=False)
    designs = [sample(random.Random(seed)) for seed in range(3)]
    population = _members({designs[0]: 0.9, designs[1]: math.nan, designs[2]: 0.2})
    child = EvolutionProposer(config).search(population, set(), random.Random(0))
    assert child is not None
    # designs[0] aged out (population 2), designs[1] failed: the parent is designs[2].
    assert child.parent_ids == [f"id-{designs[2].key()}"]


def test_motif_estimates_shrink_toward_the_mean_and_count_failures_as_zero():
    good, poor, broken = Genome(), Genome(heads=1), Genome(heads=2)
    estimate = motif_estimates(_members({good: 0.9, poor: 0.3, broken: math.nan}))
    assert estimate.overall == pytest.approx(0.4)  # (0.9 + 0.3 + 0) / 3
    assert estimate("heads", 4) == pytest.approx((0.4 + 0.9) / 2)  # one design and the pseudo-design
    assert estimate("heads", 2) == pytest.approx((0.4 + 0.0) / 2)
    assert estimate("heads", 8) == pytest.approx(0.4)  # never tried: the mean
    assert estimate("update", "delta") == pytest.approx((0.4 + 0.9 + 0.3 + 0.0) / 4)


def test_guided_mutation_keeps_what_sets_the_parent_apart_from_poor_designs():
    # The parent differs from two poor designs only in heads and output norm; every other motif it
    # shares with them, so those are the ones worth changing.
    parent = Genome()
    poor = [Genome(heads=1, output_norm="none"), Genome(heads=2, output_norm="none")]
    population = _members({poor[0]: 0.1, poor[1]: 0.1, parent: 0.9})
    tried = {genome.key() for genome in (parent, *poor)}
    kept = {True: 0, False: 0}
    for guided in (True, False):
        proposer = EvolutionProposer(
            EvolutionConfig(population=10, tournament=3, initial=1, guided=guided, classics=False)
        )
        for seed in range(30):
            child = proposer.search(population, tried, random.Random(seed))
            assert child is not None and child.parent_ids == [f"id-{parent.key()}"]
            changed = difference(parent, _genome(child))
            kept[guided] += not {"heads", "output_norm"} & set(changed)
    assert kept[True] == 30  # guided: always
    assert kept[False] < 30  # a random change of motif sometimes undoes them


def test_proposers_never_repeat_a_design_and_say_when_they_run_dry():
    tried = {genome.key() for genome in space()[1:]}
    last = RandomProposer().search([], tried, random.Random(0))
    assert last is None or _genome(last) == space()[0]  # a few hundred draws may miss it
    assert RandomProposer().search([], {genome.key() for genome in space()}, random.Random(0)) is None


def test_bootstrap_intervals_and_rank_correlation():
    low, high = mean_interval([0.10, 0.12, 0.11, 0.13, 0.09])
    assert 0.09 <= low < 0.11 < high <= 0.13
    assert mean_interval([0.1, 0.2]) is None  # too few values to resample
    assert mean_interval([0.5, 0.5, 0.5]) is None
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2], [2, 1]) is None


def test_every_slot_has_at_least_two_motifs():
    assert all(len(values) >= 2 for values in SLOTS.values())


def test_the_analyst_keeps_one_finding_per_motif_change_revised_as_pairs_accumulate(bare_study):
    """Three parent->child pairs that add a short convolution (fitness +0.10, +0.12, +0.08): one
    finding, revised with each pair, "supports" once the paired interval clears zero. A design
    without a grammar parent adds no finding: its own screening result is a measurement."""
    study, kb = bare_study, bare_study.kb

    def screened(genome: Genome, fitness: float, parent_ids: list[str]) -> tuple[str, str]:
        architecture = kb.add_architecture(
            readable_name(genome), render(genome), "evolution", "", parent_ids, study_id=study.study_id
        )
        run = kb.add_run(
            architecture.id, "mqar", study_id=study.study_id, fidelity="screen", status="succeeded",
            fitness=fitness, result={"value": fitness, "metric": "accuracy"},
        )  # fmt: skip
        return architecture.id, run.id

    statements, verdicts = [], []
    for index, (heads, gain) in enumerate([(1, 0.10), (2, 0.12), (4, 0.08)]):
        parent = Genome(short_conv=0, heads=heads)
        parent_id, _ = screened(parent, 0.5, [])
        child_id, child_run = screened(parent.model_copy(update={"short_conv": 4}), 0.5 + gain, [parent_id])
        finding = analyze(study, child_id, kb.get(Run, child_run))
        assert finding is not None and "change:short_conv:0->4" in finding.tags
        assert f"n = {index + 1} parent-child pair" in finding.statement
        statements.append(finding.statement)
        verdicts.append(finding.verdict)
    with kb.reading() as session:
        findings = session.exec(select(Finding).where(Finding.study_id == study.study_id)).all()
    assert len(findings) == 1  # revised in place, not one line per design
    assert verdicts == ["inconclusive", "supports", "supports"]  # one pair has no interval
    assert findings[0].effect_size == pytest.approx(0.10) and findings[0].effect_low > 0
    assert len(findings[0].evidence_run_ids) == 6
    hits = kb.search("changing short conv", filters=SearchFilters(kinds=("finding",)))
    assert [hit.ref_id for hit in hits] == [findings[0].id]  # retrieval sees only the revision

    lone_id, lone_run = screened(Genome(heads=8), 0.9, [])
    assert analyze(study, lone_id, kb.get(Run, lone_run)) is None
