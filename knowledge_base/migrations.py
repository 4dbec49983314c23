"""Schema versions, so that a database written by an older discover opens in a newer one.

A new database gets the current tables and is stamped with `SCHEMA_VERSION`. An older one is
brought up step by step: `MIGRATIONS[n]` takes a database from version n-1 to n, using Alembic's
portable operations (which rebuild tables on SQLite, where ALTER TABLE is limited). Each step runs
in its own transaction with the version bump, so a crash mid-upgrade leaves a consistent version.

To change the schema: edit `schema.py`, add `MIGRATIONS[SCHEMA_VERSION + 1]` doing the same change
to an existing database, and bump `SCHEMA_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Connection, Integer, String, Text, inspect, select
from sqlmodel import SQLModel

from discover.knowledge_base.schema import SchemaVersion, Verification

SCHEMA_VERSION = 6

Migration = Callable[[Operations], None]


def experiment_links(ops: Operations) -> None:
    """2: architectures and LLM calls name the experiment they belong to, so a report can show
    what each design cost in LLM dollars."""
    ops.add_column("architecture", Column("experiment_id", String, nullable=True))
    ops.add_column("llmcall", Column("experiment_id", String, nullable=True))


def verifications(ops: Operations) -> None:
    """3: verifications are records of their own (per-seed values, p- and q-values), so a study's
    false-discovery control can be recomputed over all of them."""
    Verification.__table__.create(ops.get_bind(), checkfirst=True)


def replications(ops: Operations) -> None:
    """4: a verification may replicate an earlier one (fresh seeds, a fresh held-out draw). Step 3
    creates today's table, so only a table made by an earlier release of step 3 lacks them."""
    present = {column["name"] for column in inspect(ops.get_bind()).get_columns("verification")}
    if "replicates" not in present:
        ops.add_column("verification", Column("replicates", String, nullable=True))
    if "heldout_draw" not in present:
        ops.add_column("verification", Column("heldout_draw", Integer, nullable=False, server_default="0"))


def hypotheses(ops: Operations) -> None:
    """5: an architecture keeps the hypothesis it was proposed with, beside its motivation; designs
    stored before have none (empty). Only a missing column is added: a database may be stamped
    older than its tables (tests step a new one's version back)."""
    present = {column["name"] for column in inspect(ops.get_bind()).get_columns("architecture")}
    if "hypothesis" not in present:
        ops.add_column("architecture", Column("hypothesis", Text, nullable=False, server_default=""))


def call_kinds(ops: Operations) -> None:
    """6: an LLM call row says whether it was a request or a note on a malformed answer (which
    sent nothing, and is not counted as a request), and a failed request's kind of error.
    Errors recorded before have no kind. Only missing columns are added: a database may be
    stamped older than its tables (tests step a new one's version back)."""
    present = {column["name"] for column in inspect(ops.get_bind()).get_columns("llmcall")}
    if "kind" not in present:
        ops.add_column("llmcall", Column("kind", String, nullable=False, server_default="request"))
    if "error_kind" not in present:
        ops.add_column("llmcall", Column("error_kind", String, nullable=True))
    ops.execute("UPDATE llmcall SET kind = 'note' WHERE status = 'malformed'")


MIGRATIONS: dict[int, Migration] = {
    2: experiment_links,
    3: verifications,
    4: replications,
    5: hypotheses,
    6: call_kinds,
}


class SchemaError(RuntimeError):
    """The database cannot be used by this release; the message says what to do."""


def stored_version(connection: Connection) -> int | None:
    """The database's schema version, or None for an empty database."""
    if not inspect(connection).has_table(SchemaVersion.__tablename__):
        if inspect(connection).get_table_names():
            raise SchemaError("this database has tables but no discover schema version: not a knowledge base")
        return None
    version = connection.execute(select(SchemaVersion.version)).scalar_one_or_none()
    if version is None:
        raise SchemaError("this knowledge base has lost its schema version row")
    return version


def upgrade(
    begin: Callable[[], AbstractContextManager[Connection]],
    create_extras: Callable[[Connection], None],
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
) -> bool:
    """Create or migrate the schema up to `target`. `create_extras` adds what SQLModel cannot
    declare (full-text indexes). `begin` opens a write transaction that excludes other writers, so
    processes opening a new database at once create it once. Returns True when it was created."""
    while True:  # one step per transaction, re-reading the version another process may have moved
        with begin() as connection:
            version = stored_version(connection)
            if version is None:
                SQLModel.metadata.create_all(connection)
                create_extras(connection)
                connection.execute(SchemaVersion.__table__.insert().values(id=1, version=target))
                return True
            if version > target:
                raise SchemaError(
                    f"this knowledge base has schema version {version}, but this discover reads up to "
                    f"{target}: upgrade discover"
                )
            if version == target:
                return False
            step = version + 1
            if step not in migrations:
                raise SchemaError(f"no migration to schema version {step}; this release is incomplete")
            migrations[step](Operations(MigrationContext.configure(connection)))
            connection.execute(SchemaVersion.__table__.update().values(version=step))
