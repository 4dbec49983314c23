"""Parent selection: which earlier architectures the next proposal should build on.

- `TopK`: a uniform draw among the k fittest. Pure exploitation; right for a short budget.
- `UCT`: fitness plus an exploration bonus that shrinks as an architecture is used as a parent,
  so promising but rarely expanded designs get their turn (the bandit view of evolution).
- `MapElites`: architectures are binned on behaviour descriptors (say, log parameters and the
  complexity exponent); only each cell's fittest survives, and cells are drawn uniformly, so a
  cluster of near-identical strong designs cannot crowd out different ideas.

Every policy is deterministic: the same population (in any order), count and seed give the same
parents. Non-finite fitness (a NaN from a diverged run) counts as the worst possible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Scored:
    id: str
    fitness: float  # in [0, 1], higher is better
    children: int = 0  # times already used as a parent
    descriptors: tuple[float, ...] = ()


class ParentPolicy(Protocol):
    name: str

    def select(self, population: Sequence[Scored], n: int, seed: int) -> list[str]:
        """n parent ids (repeats allowed)."""
        ...


def value(member: Scored) -> float:
    return member.fitness if math.isfinite(member.fitness) else -math.inf


def canonical(population: Sequence[Scored], n: int) -> list[Scored]:
    """The population in a fixed order (by id), after checking the request."""
    if not population:
        raise ValueError("no architectures to choose parents from: score at least one first")
    if n < 1:
        raise ValueError(f"number of parents must be at least 1, got {n}")
    return sorted(population, key=lambda member: member.id)


def fittest_first(population: Sequence[Scored]) -> list[Scored]:
    return sorted(population, key=lambda member: (-value(member), member.id))


@dataclass(frozen=True)
class TopK:
    k: int = 5
    name: str = "top_k"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"top_k needs k >= 1, got {self.k}")

    def select(self, population: Sequence[Scored], n: int, seed: int) -> list[str]:
        best = fittest_first(canonical(population, n))[: self.k]
        rng = random.Random(seed)
        return [rng.choice(best).id for _ in range(n)]


@dataclass(frozen=True)
class UCT:
    c: float = 0.5
    name: str = "uct"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.c) and self.c >= 0):
            raise ValueError(f"uct needs a finite c >= 0, got {self.c}")

    def select(self, population: Sequence[Scored], n: int, seed: int) -> list[str]:
        members = canonical(population, n)
        visits = {member.id: member.children for member in members}
        picks = []
        for _ in range(n):  # each pick counts as a visit, so n picks spread out
            log_total = math.log(sum(visits.values()) + 1)

            def upper_bound(member: Scored, log_total: float = log_total) -> float:
                return value(member) + self.c * math.sqrt(log_total / (visits[member.id] + 1))

            chosen = min(members, key=lambda member: (-upper_bound(member), member.id))
            visits[chosen.id] += 1
            picks.append(chosen.id)
        return picks


@dataclass(frozen=True)
class MapElites:
    bins: int = 4
    ranges: tuple[tuple[float, float], ...] | None = None  # per descriptor; default: the population's
    name: str = "map_elites"

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"map_elites needs bins >= 1, got {self.bins}")

    def select(self, population: Sequence[Scored], n: int, seed: int) -> list[str]:
        members = canonical(population, n)
        elites: dict[tuple[int, ...], Scored] = {}
        for member in fittest_first(members):
            elites.setdefault(self.cell(member, members), member)
        cells = sorted(elites)
        rng = random.Random(seed)
        return [elites[rng.choice(cells)].id for _ in range(n)]

    def cell(self, member: Scored, members: Sequence[Scored]) -> tuple[int, ...]:
        """The grid cell of `member`; members without descriptors share the cell ()."""
        coordinates = []
        for axis, x in enumerate(member.descriptors):
            low, high = self.axis_range(axis, members)
            fraction = 0.0 if high <= low or not math.isfinite(x) else (x - low) / (high - low)
            coordinates.append(min(self.bins - 1, max(0, int(fraction * self.bins))))
        return tuple(coordinates)

    def axis_range(self, axis: int, members: Sequence[Scored]) -> tuple[float, float]:
        if self.ranges is not None:
            if axis >= len(self.ranges):
                raise ValueError(f"map_elites has ranges for {len(self.ranges)} descriptors, got more")
            return self.ranges[axis]
        values = [m.descriptors[axis] for m in members if len(m.descriptors) > axis]
        finite = [v for v in values if math.isfinite(v)]
        return (min(finite), max(finite)) if finite else (0.0, 0.0)


POLICIES = ("top_k", "uct", "map_elites")


def make_policy(name: str, **params: object) -> ParentPolicy:
    """A policy by name with its parameters, e.g. make_policy("uct", c=1.0)."""
    classes: dict[str, type] = {"top_k": TopK, "uct": UCT, "map_elites": MapElites}
    if name not in classes:
        raise ValueError(f"unknown parent policy {name!r}; choose one of {', '.join(POLICIES)}")
    try:
        return classes[name](**params)
    except TypeError:
        allowed = [f for f in classes[name].__dataclass_fields__ if f != "name"]
        raise ValueError(f"{name} takes {', '.join(allowed)}, got {', '.join(params)}") from None
