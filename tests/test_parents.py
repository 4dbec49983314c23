"""Parent selection policies: deterministic, and each with the bias it promises."""

import math
import random
from collections import Counter

import pytest

from discover.knowledge_base.parents import POLICIES, UCT, MapElites, Scored, TopK, make_policy


def population(size=20, seed=0):
    rng = random.Random(seed)
    return [
        Scored(f"a{i:02d}", rng.random(), rng.randint(0, 3), descriptors=(rng.random(), rng.random()))
        for i in range(size)
    ]


@pytest.mark.parametrize("name", POLICIES)
def test_same_population_in_any_order_gives_the_same_parents(name):
    members = population()
    shuffled = members[:]
    random.Random(1).shuffle(shuffled)
    policy = make_policy(name)
    assert policy.select(members, 12, seed=7) == policy.select(shuffled, 12, seed=7)
    assert len(policy.select(members, 12, seed=7)) == 12


def test_top_k_draws_only_from_the_k_fittest():
    members = population()
    best = {m.id for m in sorted(members, key=lambda m: -m.fitness)[:3]}
    picks = TopK(k=3).select(members, 200, seed=0)
    assert set(picks) == best  # all three are drawn, nothing else


def test_uct_with_no_exploration_is_greedy():
    members = population()
    best = max(members, key=lambda m: m.fitness).id
    assert UCT(c=0.0).select(members, 5, seed=0) == [best] * 5


def test_uct_prefers_the_unexpanded_among_equals_and_spreads_picks():
    members = [Scored("used", 0.6, children=10), Scored("fresh", 0.6, children=0), Scored("weak", 0.1)]
    picks = UCT(c=0.5).select(members, 20, seed=0)
    assert picks[0] == "fresh"
    assert len(set(picks)) >= 2


def test_non_finite_fitness_is_never_chosen_before_a_finite_one():
    members = [Scored("nan", math.nan), Scored("ok", 0.01), Scored("inf", math.inf)]
    assert TopK(k=2).select(members, 30, seed=0).count("nan") == 0
    assert set(UCT(c=0.0).select(members, 3, seed=0)) == {"ok"}


def test_map_elites_keeps_cell_elites_and_resists_a_strong_cluster():
    cluster = [Scored(f"c{i}", 0.9 + i / 1000, descriptors=(0.01 * i, 0.0)) for i in range(10)]
    others = [Scored("x", 0.2, descriptors=(1.0, 1.0)), Scored("y", 0.3, descriptors=(1.0, 0.0))]
    policy = MapElites(bins=4)
    picks = Counter(policy.select(cluster + others, 300, seed=3))
    assert set(picks) == {"c9", "x", "y"}  # only the cluster's elite competes for its cell
    assert picks["x"] > 60 and picks["y"] > 60  # roughly a third each, unlike fitness-greedy TopK


def test_map_elites_with_fixed_ranges_and_missing_descriptors():
    members = [Scored("plain", 0.5), Scored("plain2", 0.7), Scored("described", 0.1, descriptors=(5.0,))]
    picks = set(MapElites(bins=2, ranges=((0.0, 10.0),)).select(members, 50, seed=0))
    assert picks == {"plain2", "described"}


def test_bad_requests_are_clear():
    with pytest.raises(ValueError, match="no architectures"):
        TopK().select([], 1, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        UCT().select(population(), 0, seed=0)
    with pytest.raises(ValueError, match="policy 'best'; choose one of top_k, uct, map_elites"):
        make_policy("best")
    with pytest.raises(ValueError, match="uct takes c"):
        make_policy("uct", temperature=2)
    with pytest.raises(ValueError, match="k >= 1"):
        make_policy("top_k", k=0)
