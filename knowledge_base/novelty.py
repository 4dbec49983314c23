"""Novelty before GPU time: is a proposed architecture one we have already tried?

Two tests, either of which makes a duplicate:
- the same functional hash (the probes' fingerprint of what the mixer computes, so a renamed or
  reformatted copy is caught);
- a motivation whose similarity to an earlier one reaches the threshold: cosine similarity of
  embeddings when an embedder is configured, else of word-count vectors over the BM25 shortlist.
The answer names the nearest earlier architectures either way, so the agent can be told what to
avoid or to build on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from sqlmodel import select

from discover.knowledge_base import search
from discover.knowledge_base.schema import Architecture, SearchItem
from discover.knowledge_base.store import KnowledgeBase

DEFAULT_THRESHOLD = 0.85
SHORTLIST = 20  # lexical candidates whose similarity is computed exactly


@dataclass(frozen=True)
class Similar:
    architecture_id: str
    name: str
    similarity: float  # 1.0 for a functional-hash match
    why: str  # "same functional hash" or "similar motivation"


@dataclass(frozen=True)
class NoveltyCheck:
    duplicate: bool
    nearest: tuple[Similar, ...]  # most similar first


def is_duplicate(
    kb: KnowledgeBase,
    motivation: str,
    functional_hash: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = 3,
) -> NoveltyCheck:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold}")
    nearest: dict[str, Similar] = {}
    if functional_hash:
        with kb.reading() as session:
            same = session.exec(select(Architecture).where(Architecture.functional_hash == functional_hash))
            for row in same:
                nearest[row.id] = Similar(row.id, row.name, 1.0, "same functional hash")
    for similar in similar_motivations(kb, motivation):
        nearest.setdefault(similar.architecture_id, similar)
    ranked = sorted(nearest.values(), key=lambda s: (-s.similarity, s.architecture_id))[:k]
    return NoveltyCheck(duplicate=any(s.similarity >= threshold for s in ranked), nearest=tuple(ranked))


def similar_motivations(kb: KnowledgeBase, motivation: str) -> list[Similar]:
    filters = search.SearchFilters(kinds=("architecture",))
    with kb.reading() as session:
        connection = session.connection()
        if kb.embedder is not None:
            vector = kb.embedder.embed([motivation])[0]
            scored = search.dense(connection, vector, kb.embedder.model, SHORTLIST, filters)
        else:
            shortlist = search.lexical(connection, motivation, SHORTLIST, filters)
            bodies = dict(
                connection.execute(
                    select(SearchItem.id, SearchItem.body).where(
                        SearchItem.id.in_([item for item, _ in shortlist])
                    )
                ).all()
            )
            words = Counter(search.words(motivation))
            scored = [(item, cosine(words, Counter(search.words(bodies[item])))) for item, _ in shortlist]
        items = {
            item.id: item
            for item in session.exec(
                select(SearchItem).where(SearchItem.id.in_([item for item, _ in scored]))
            )
        }
    return [
        Similar(items[item].ref_id, items[item].title, similarity, "similar motivation")
        for item, similarity in scored
        if item in items
    ]


def cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(count * b[word] for word, count in a.items())
    norm = math.sqrt(sum(c * c for c in a.values()) * sum(c * c for c in b.values()))
    return dot / norm if norm else 0.0
