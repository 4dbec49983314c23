"""Retrieval and dedup latency of the knowledge base at study scale.

    python -m benchmarks.knowledge_base                     # SQLite
    python -m benchmarks.knowledge_base --postgres URL      # and a PostgreSQL server

Fills a fresh store with 100k findings, 10k documents (3 chunks each) and 10k architectures of
synthetic text whose word frequencies follow Zipf's law (as real text does, so common words match
many rows), then times `search` (k=10) and `is_duplicate` on queries drawn the same way.
Targets: retrieval p95 <= 20 ms, dedup p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy

from benchmarks.results import machine, write_section
from discover.knowledge_base.novelty import is_duplicate
from discover.knowledge_base.schema import VERDICTS, Architecture, Chunk, Document, Finding
from discover.knowledge_base.store import KnowledgeBase, index_row

FINDINGS, DOCUMENTS, CHUNKS_PER_DOCUMENT, ARCHITECTURES = 100_000, 10_000, 3, 10_000
QUERIES = 300
VOCABULARY = 20_000
TASKS = ("mqar", "lm")


class ZipfText:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = [
            "".join(self.rng.choices(letters, k=self.rng.randint(3, 10))) for _ in range(VOCABULARY)
        ]
        self.cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, VOCABULARY + 1)))

    def __call__(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=n))


def fill(kb: KnowledgeBase, text: ZipfText) -> None:
    rng = random.Random(1)
    batch = 5_000
    for start in range(0, FINDINGS, batch):
        with kb.writing() as session:
            for _ in range(min(batch, FINDINGS - start)):
                finding = Finding(
                    statement=text(rng.randint(12, 40)), verdict=rng.choice(VERDICTS), task=rng.choice(TASKS)
                )
                session.add(finding)
                index_row(session, finding)
    for start in range(0, DOCUMENTS, batch // 5):
        with kb.writing() as session:
            for n in range(start, min(start + batch // 5, DOCUMENTS)):
                document = Document(
                    collection="documents", source=f"doc-{n}", title=text(6), content_hash=str(n)
                )
                session.add(document)
                for ordinal in range(CHUNKS_PER_DOCUMENT):
                    chunk = Chunk(document_id=document.id, ordinal=ordinal, text=text(150))
                    session.add(chunk)
                    index_row(session, chunk, title=document.title)
    with kb.writing() as session:
        for n in range(ARCHITECTURES):
            architecture = Architecture(
                name=f"arch-{n}", code="", code_hash=str(n), functional_hash=f"{n:016x}",
                motivation=text(rng.randint(20, 60)), origin="llm",
            )  # fmt: skip
            session.add(architecture)
            index_row(session, architecture)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def measure(location: str, label: str) -> list[str]:
    text = ZipfText(seed=0)
    started = time.perf_counter()
    with KnowledgeBase(location, starter=None) as kb:
        fill(kb, text)
        if kb.backend == "postgresql":  # the statistics autovacuum keeps, gathered now
            with kb.writing() as session:
                session.execute(sqlalchemy.text("ANALYZE searchitem"))
        fill_s = time.perf_counter() - started
        queries = [text(random.Random(n).randint(3, 8)) for n in range(QUERIES)]
        for query in queries[:20]:  # warm the caches, as a long-running study has them
            kb.search(query)
        search_ms, dedup_ms = [], []
        for query in queries:
            t0 = time.perf_counter()
            kb.search(query, k=10)
            search_ms.append(1e3 * (time.perf_counter() - t0))
        for n, query in enumerate(queries):
            motivation = query + " " + text(20)
            t0 = time.perf_counter()
            is_duplicate(kb, motivation, functional_hash=f"{n * 7919 % (2 * ARCHITECTURES):016x}")
            dedup_ms.append(1e3 * (time.perf_counter() - t0))
    search_p50, search_p95 = percentiles(search_ms)
    dedup_p50, dedup_p95 = percentiles(dedup_ms)
    print(f"{label}: fill {fill_s:.0f} s, search p50 {search_p50:.1f} p95 {search_p95:.1f} ms, "
          f"dedup p50 {dedup_p50:.1f} p95 {dedup_p95:.1f} ms", flush=True)  # fmt: skip
    return [
        f"| {label} | search (k=10) | {search_p50:.1f} ms | {search_p95:.1f} ms | 20 ms |",
        f"| {label} | is_duplicate | {dedup_p50:.1f} ms | {dedup_p95:.1f} ms | 50 ms |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="URL of an empty PostgreSQL database to fill")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows += measure(str(Path(folder) / "bench.db"), "SQLite (FTS5)")
    if args.postgres:
        rows += measure(args.postgres, "PostgreSQL (tsvector, GIN)")
    write_section(
        "knowledge-base",
        "## Knowledge base retrieval and dedup latency\n\n"
        f"Machine: {machine()}. Store: {FINDINGS:,} findings, {DOCUMENTS:,} documents "
        f"({CHUNKS_PER_DOCUMENT} chunks each) and {ARCHITECTURES:,} architectures of Zipf-distributed "
        f"synthetic text; {QUERIES} queries of 3–8 words drawn the same way; lexical retrieval only "
        "(no embedder). is_duplicate = functional-hash lookup + motivation shortlist and similarity.\n\n"
        "| backend | operation | p50 | p95 | target (p95) |\n|---|---|---|---|---|\n" + "\n".join(rows),
    )


if __name__ == "__main__":
    main()
