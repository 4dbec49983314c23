"""`discover kb ...`, `discover export` and `discover import`: the knowledge base from the shell.

Every command works on the user-level knowledge base ($DISCOVER_HOME/knowledge.db, shared by all
studies) unless `--db` names another: a study's SQLite file or a postgresql:// URL.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from discover.console import fail, stdout

if TYPE_CHECKING:  # the knowledge base (SQLAlchemy, Alembic, openai) is imported when a command runs
    from discover.knowledge_base.store import KnowledgeBase

kb_app = typer.Typer(help="The knowledge base: ingest documents, search what is known.", no_args_is_help=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="A SQLite file or postgresql:// URL (default: the user knowledge base)."),
]


@contextmanager
def open_kb(db: str | None) -> Iterator[KnowledgeBase]:
    """The knowledge base, with store errors turned into one line and exit status 2."""
    from discover.knowledge_base.embeddings import embedder_from_environment
    from discover.knowledge_base.ingest import IngestError
    from discover.knowledge_base.migrations import SchemaError
    from discover.knowledge_base.store import KnowledgeBase, StoreError, user_knowledge_base

    try:
        with KnowledgeBase(db or user_knowledge_base(), embedder=embedder_from_environment()) as kb:
            yield kb
    except (StoreError, SchemaError, IngestError) as error:
        fail(str(error))


@kb_app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Markdown, text or JSON-lines files, or folders.")],
    collection: Annotated[str, typer.Option(help="Collection to file them under.")] = "documents",
    db: DbOpt = None,
):
    """Ingest documents (chunked, searchable). Re-adding unchanged files does nothing."""
    from discover.knowledge_base.ingest import read_documents

    with open_kb(db) as kb:
        # Every file is read and checked before anything is stored: a bad file adds nothing.
        batches = [(path, read_documents(path, collection)) for path in paths]
        for path, documents in batches:
            added = sum(kb.add_document(document)[1] for document in documents)
            stdout.print(f"{path}: {added} added, {len(documents) - added} unchanged")


@kb_app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many results.")] = 5,
    kind: Annotated[
        list[str] | None, typer.Option(help="Only these kinds: finding, chunk, architecture (repeatable).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only findings about this task.")] = None,
    verdict: Annotated[
        str | None, typer.Option(help="Only findings with this verdict: supports, refutes, inconclusive.")
    ] = None,
    origin: Annotated[str | None, typer.Option(help="Only architectures of this origin.")] = None,
    study: Annotated[str | None, typer.Option(help="Only this study's records.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only records made at or after this time (UTC).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    db: DbOpt = None,
):
    """Search findings and documents (BM25, plus embeddings when configured)."""
    from discover.knowledge_base.schema import SEARCH_KINDS, VERDICTS
    from discover.knowledge_base.search import SearchFilters

    kinds = tuple(kind or ("finding", "chunk"))
    for name in kinds:
        if name not in SEARCH_KINDS:
            fail(f"--kind takes {', '.join(SEARCH_KINDS)}, not {name!r}")
    if verdict is not None and verdict not in VERDICTS:
        fail(f"--verdict takes {', '.join(VERDICTS)}, not {verdict!r}")
    filters = SearchFilters(
        kinds=kinds, task=task, verdict=verdict, origin=origin, study_id=study, since=since
    )
    with open_kb(db) as kb:
        hits = kb.search(query, k=k, filters=filters)
    if json:
        for hit in hits:
            stdout.print(jsonlib.dumps(hit.model_dump(mode="json")), soft_wrap=True, markup=False)
        return
    if not hits:
        stdout.print("nothing found")
        return
    table = Table(show_lines=True)
    for column in ("score", "kind", "title", "text"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        snippet = hit.text if len(hit.text) <= 300 else hit.text[:297] + "..."
        table.add_row(
            f"{hit.score:.3g}",
            hit.kind + (f" ({hit.verdict})" if hit.verdict else ""),
            escape(hit.title),
            escape(snippet),
        )
    stdout.print(table)


@kb_app.command("remove")
def remove(
    collection: Annotated[
        str, typer.Option(help="Delete every document of this collection, e.g. cognition.")
    ],
    db: DbOpt = None,
):
    """Delete a collection, e.g. the starter cognition base before loading your own."""
    with open_kb(db) as kb:
        stdout.print(f"removed {kb.remove_collection(collection)} document(s) of {collection}")


def export_command(
    out: Annotated[Path, typer.Argument(help="The JSON-lines file to write.")],
    study: Annotated[str | None, typer.Option(help="Only this study (default: everything).")] = None,
    db: DbOpt = None,
):
    """Write a study (or the whole knowledge base) as portable JSON lines."""
    from discover.knowledge_base.transfer import export

    with open_kb(db) as kb:
        written = export(kb, out, study)
    stdout.print(f"wrote {sum(written.values())} rows to {out}: " + describe(written))


def import_command(
    path: Annotated[Path, typer.Argument(help="A file written by `discover export`.")],
    db: DbOpt = None,
):
    """Merge an export into the knowledge base; rows already present are skipped."""
    from discover.knowledge_base.transfer import import_file

    with open_kb(db) as kb:
        added, skipped = import_file(kb, path)
    stdout.print(f"added {sum(added.values())} rows ({describe(added)}), skipped {skipped} already present")


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in sorted(counts.items())) or "nothing"
