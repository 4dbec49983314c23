"""Retrieval: lexical BM25 over every search item, fused with dense similarity when embeddings exist.

The lexical index is the backend's own: SQLite FTS5 (an external-content table kept in step with
`searchitem` by triggers, ranked by bm25) or PostgreSQL full-text search (a generated tsvector
column with a GIN index, ranked by ts_rank_cd). Queries are reduced to plain word tokens joined by
OR, so user text can never be read as query syntax, and a document matching some of the words
still ranks. Dense search is exact cosine similarity over the stored vectors; the two rankings are
merged by reciprocal-rank fusion, which needs no score calibration between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection, text

STOPWORDS = frozenset(
    "a an and are as at be by for from has have how in is it its of on or that the this to was "
    "were what when which why will with does do can not no".split()
)
RANK_BUDGET = 2_000  # rows a query may rank; see `informative_words`
RRF_K = 60  # reciprocal-rank fusion constant; 60 is the value the method was proposed with


@dataclass(frozen=True)
class SearchFilters:
    kinds: tuple[str, ...] = ("finding", "chunk")
    task: str | None = None
    verdict: str | None = None
    origin: str | None = None
    study_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, alias: str) -> tuple[str, dict[str, object]]:
        """SQL conditions on the search item table (aliased `alias`) and their bound values."""
        kinds = {f"kind{i}": kind for i, kind in enumerate(self.kinds)}
        clauses = [f"{alias}.kind IN ({', '.join(':' + name for name in kinds)})"]
        params: dict[str, object] = dict(kinds)
        for column in ("task", "verdict", "origin", "study_id"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{alias}.{column} = :{column}")
                params[column] = value
        if self.since is not None:
            clauses.append(f"{alias}.created_at >= :since")
            params["since"] = timestamp(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.created_at < :until")
            params["until"] = timestamp(self.until)
        return " AND ".join(clauses), params


def timestamp(moment: datetime) -> str:
    """The text form datetimes are stored in on SQLite (naive UTC), which PostgreSQL also reads, so
    a raw-SQL comparison orders correctly on both. A naive `moment` is taken to be UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def words(text: str) -> list[str]:
    """Lower-case word tokens without stopwords, repeats kept."""
    return [word for word in re.findall(r"[0-9a-z]+", text.lower()) if word not in STOPWORDS]


def tokens(query: str) -> list[str]:
    """The distinct words of a query, in order."""
    return list(dict.fromkeys(words(query)))


# ----------------------------------------------------------------------------- the lexical index

SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "title, body, content='searchitem', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER searchitem_ai AFTER INSERT ON searchitem BEGIN "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER searchitem_ad AFTER DELETE ON searchitem BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
    "END",
    "CREATE TRIGGER searchitem_au AFTER UPDATE ON searchitem BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)
POSTGRES_INDEX = (
    "ALTER TABLE searchitem ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', title), 'A') || to_tsvector('english', body)) STORED",
    "CREATE INDEX searchitem_tsv ON searchitem USING gin (tsv)",
)


def create_index(connection: Connection) -> None:
    """Add the backend's full-text index to a new database."""
    statements = SQLITE_INDEX if connection.dialect.name == "sqlite" else POSTGRES_INDEX
    for statement in statements:
        connection.execute(text(statement))


def lexical(connection: Connection, query: str, k: int, filters: SearchFilters) -> list[tuple[int, float]]:
    """(search item id, score) of the k best lexical matches, best first; higher score is better."""
    sqlite = connection.dialect.name == "sqlite"
    words, oldest = informative_words(connection, tokens(query))
    if not words:
        return []
    where, params = filters.where("s")
    params.update(k=k, match=match_expression(sqlite, words))
    if oldest is not None:
        where += " AND search_fts.rowid >= :oldest" if sqlite else " AND s.id >= :oldest"
        params["oldest"] = oldest
    if sqlite:
        sql = (
            "SELECT s.id, -bm25(search_fts, 2.0, 1.0) AS score FROM search_fts "
            "JOIN searchitem s ON s.id = search_fts.rowid "
            f"WHERE search_fts MATCH :match AND {where} ORDER BY bm25(search_fts, 2.0, 1.0) LIMIT :k"
        )
    else:
        sql = (
            "SELECT s.id, ts_rank_cd(s.tsv, q) AS score FROM searchitem s, "
            "to_tsquery('english', :match) q "
            f"WHERE s.tsv @@ q AND {where} ORDER BY score DESC, s.id LIMIT :k"
        )
    return [(row[0], float(row[1])) for row in connection.execute(text(sql), params)]


def match_expression(sqlite: bool, words: list[str]) -> str:
    """Words (plain [0-9a-z] tokens, so never query syntax) joined by the backend's OR."""
    return " OR ".join(f'"{word}"' for word in words) if sqlite else " | ".join(words)


def informative_words(connection: Connection, words: list[str]) -> tuple[list[str], int | None]:
    """The query words worth ranking by, and the id from which on to rank (None: everything).

    Ranking costs time per matching row, and a word found in a large share of the store matches
    many rows while adding almost nothing to BM25 (its inverse document frequency is near zero).
    So words join rarest first while the rows to rank stay within RANK_BUDGET; below the budget
    (any small store) every word is kept and the ranking is exact BM25. When even the rarest word
    is that common, every word is kept and only the newest items are ranked: those holding each
    word's newest RANK_BUDGET matches."""
    sqlite = connection.dialect.name == "sqlite"
    counts = sqlite_match_counts(connection, words) if sqlite else postgres_match_estimates(connection, words)
    kept, rows = [], 0
    for word in sorted(words, key=lambda w: (counts[w], w)):
        if rows + counts[word] > RANK_BUDGET:
            break
        kept.append(word)
        rows += counts[word]
    if kept or not words:
        return kept, None
    if sqlite:
        newest = (
            "SELECT rowid FROM search_fts WHERE search_fts MATCH :match ORDER BY rowid DESC LIMIT 1 OFFSET :n"
        )
        starts = [
            connection.execute(text(newest), {"match": f'"{w}"', "n": RANK_BUDGET}).scalar() for w in words
        ]
        return words, max((start for start in starts if start is not None), default=None)
    # Items are spread evenly enough over ids for an estimate: the ids holding the most common
    # word's newest RANK_BUDGET matches.
    low, high = connection.execute(text("SELECT min(id), max(id) FROM searchitem")).one()
    most = max(counts.values())
    return words, int(high - (high - low + 1) * min(1.0, RANK_BUDGET / max(most, 1)))


def sqlite_match_counts(connection: Connection, words: list[str]) -> dict[str, int]:
    """How many items contain each word, counted no further than RANK_BUDGET + 1 (so a common
    word costs no more than a rare one)."""
    count = "SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :match LIMIT :cap)"
    return {
        word: connection.execute(text(count), {"match": f'"{word}"', "cap": RANK_BUDGET + 1}).scalar_one()
        for word in words
    }


def postgres_match_estimates(connection: Connection, words: list[str]) -> dict[str, int]:
    """Estimated items containing each word, from the planner's statistics of the tsvector column:
    its most common lexemes with their frequencies, kept by ANALYZE and autovacuum. (Counting
    exactly would cost a full GIN bitmap scan per word.) A word outside that list is estimated at
    the list's lowest frequency, an upper bound; a table never analysed has no statistics, and then
    every word is kept."""
    stats = connection.execute(
        text(
            "SELECT CAST(CAST(s.most_common_elems AS text) AS text[]), s.most_common_elem_freqs, c.reltuples "
            "FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename "
            "AND c.relnamespace = CAST(s.schemaname AS regnamespace) "
            "WHERE s.tablename = 'searchitem' AND s.attname = 'tsv' AND s.schemaname = current_schema()"
        )
    ).first()
    if stats is None or not stats[0] or stats[2] <= 0:
        return dict.fromkeys(words, 0)
    lexemes, frequencies, rows = stats
    frequency = dict(zip(lexemes, frequencies, strict=False))  # frequencies has 3 summary values more
    floor = min(frequencies[: len(lexemes)])
    analysed = connection.execute(
        text(
            "SELECT q.word, tsvector_to_array(to_tsvector('english', q.word)) "
            "FROM unnest(CAST(:words AS text[])) AS q(word)"
        ),
        {"words": words},
    ).all()
    return {
        word: int(rows * max((frequency.get(lexeme, floor) for lexeme in word_lexemes), default=0.0))
        for word, word_lexemes in analysed
    }


# ----------------------------------------------------------------------------- dense and fused


def dense(
    connection: Connection, query_vector: np.ndarray, model: str, k: int, filters: SearchFilters
) -> list[tuple[int, float]]:
    """(search item id, cosine similarity) of the k nearest items that have a vector from `model`."""
    where, params = filters.where("s")
    params["model"] = model
    rows = connection.execute(
        text(
            "SELECT e.item_id, e.vector FROM embedding e JOIN searchitem s ON s.id = e.item_id "
            f"WHERE e.model = :model AND {where}"
        ),
        params,
    ).all()
    if not rows:
        return []
    ids = np.array([row[0] for row in rows])
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
    similarity = matrix @ unit(query_vector)  # stored vectors are unit length already
    best = np.argsort(-similarity, kind="stable")[:k]
    return [(int(ids[i]), float(similarity[i])) for i in best]


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def fuse(*rankings: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: an item's score is the sum of 1 / (RRF_K + rank) over rankings."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
