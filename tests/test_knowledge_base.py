"""The knowledge base on SQLite and on a real PostgreSQL server: records, retrieval, ingestion,
export/import, migrations, concurrent writers and kills, the budget ledger, dedup."""

import json
import multiprocessing
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Text, inspect, text

from discover.budget.ledger import Budget, Ledger
from discover.budget.store import DatabaseLedgerStore
from discover.experiments.contract import code_hash
from discover.knowledge_base.embeddings import OpenAIEmbedder
from discover.knowledge_base.migrations import SCHEMA_VERSION, SchemaError, upgrade
from discover.knowledge_base.novelty import is_duplicate
from discover.knowledge_base.schema import (
    Architecture,
    BudgetEntry,
    Chunk,
    Document,
    Finding,
    LLMCall,
    Run,
    SearchItem,
    Study,
    Verification,
    utcnow,
)
from discover.knowledge_base.search import SearchFilters, create_index
from discover.knowledge_base.store import STARTER_COGNITION, KnowledgeBase, StoreError
from discover.knowledge_base.transfer import export, import_file

FORK = multiprocessing.get_context("fork")
MIXER = "import torch\n\nclass Mixer(torch.nn.Module):\n    pass\n"


@pytest.fixture
def kb(kb_location):
    with KnowledgeBase(kb_location, starter=None) as store:
        yield store


def ids(hits):
    return [hit.ref_id for hit in hits]


# ----------------------------------------------------------------------------- records


def test_records_survive_reopening(kb_location):
    with KnowledgeBase(kb_location, starter=None) as kb:
        study = kb.add_study("recall", config={"task": "mqar"}, budget="2h")
        parent = kb.add_architecture("parent", MIXER, origin="baseline")
        child = kb.add_architecture(
            "child", MIXER + "# v2\n", origin="llm", motivation="gate the state", parent_ids=[parent.id],
            study_id=study.id, functional_hash="f00d",
        )  # fmt: skip
        run = kb.add_run(child.id, "mqar", study_id=study.id, seed=3, status="running", devices=["cpu:0"])
        kb.update_run(run.id, status="succeeded", fitness=0.61, result={"accuracy": 0.93}, ended_at=utcnow())
        finding = kb.add_finding(
            "Gating the state lifts recall at 8 pairs", verdict="supports", evidence_run_ids=[run.id],
            effect_size=0.12, effect_interval=(0.05, 0.2), confidence=0.8, tags=["gating"], task="mqar",
            study_id=study.id,
        )  # fmt: skip
        kb.log_llm_call("researcher", "gpt-test", prompt_tokens=120, completion_tokens=40, latency_s=1.5)
    with KnowledgeBase(kb_location, starter=None) as kb:
        assert kb.get(Study, study.id).config == {"task": "mqar"}
        stored = kb.get(Architecture, child.id)
        assert stored.parent_ids == [parent.id] and stored.code_hash == child.code_hash
        assert stored.code_hash != parent.code_hash
        run = kb.get(Run, run.id)
        assert (run.status, run.fitness, run.result, run.devices) == (
            "succeeded",
            0.61,
            {"accuracy": 0.93},
            ["cpu:0"],
        )
        finding = kb.get(Finding, finding.id)
        assert (finding.effect_low, finding.effect_high, finding.evidence_run_ids) == (0.05, 0.2, [run.id])
        assert kb.count(LLMCall) == 1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda kb: kb.add_architecture("x", MIXER, origin="Alien origin!"), "is not a short lowercase word"),
        (lambda kb: kb.add_finding("claim", verdict="maybe"), "verdict 'maybe' is not one of"),
        (lambda kb: kb.add_finding("  ", verdict="supports"), "needs a statement"),
        (lambda kb: kb.add_finding("claim", verdict="supports", confidence=1.5), "between 0 and 1"),
        (lambda kb: kb.add_run("nope", "mqar"), "architecture 'nope', which is not stored"),
        (lambda kb: kb.update_run("nope", status="failed"), "no run 'nope'"),
    ],
)
def test_bad_records_are_refused_with_one_line(kb, call, message):
    with pytest.raises(StoreError, match=message) as error:
        call(kb)
    assert "\n" not in str(error.value)
    assert kb.count(Architecture) == kb.count(Finding) == kb.count(Run) == 0


def test_baseline_names_are_unique(kb):
    kb.add_baseline("my_mixer", MIXER, source="my_mixer.py", description="a user's mixer")
    with pytest.raises(StoreError, match="exists already"):
        kb.add_baseline("my_mixer", MIXER, source="other.py")
    assert kb.count(Architecture) == 1


def test_unsupported_database_urls_are_refused():
    with pytest.raises(StoreError, match="unsupported database"):
        KnowledgeBase("mysql://somewhere/db")


# ----------------------------------------------------------------------------- retrieval


def test_search_ranks_by_relevance_and_filters(kb):
    s1, s2 = kb.add_study("one"), kb.add_study("two")
    a = kb.add_finding("Short convolutions before the keys fix associative recall", "supports",
                       task="mqar", study_id=s1.id)  # fmt: skip
    b = kb.add_finding(
        "Exponential decay hurts recall of early pairs", "refutes", task="mqar", study_id=s2.id
    )
    c = kb.add_finding("Wider feed-forward layers lower bits per byte", "supports", task="lm", study_id=s1.id)
    assert ids(kb.search("recall convolutions", k=3))[0] == a.id
    assert set(ids(kb.search("recall", k=5))) == {a.id, b.id}
    assert ids(kb.search("recall", filters=SearchFilters(verdict="refutes"))) == [b.id]
    assert ids(kb.search("recall bits", filters=SearchFilters(task="lm"))) == [c.id]
    assert set(ids(kb.search("recall bits", filters=SearchFilters(study_id=s1.id)))) == {a.id, c.id}
    later = utcnow() + timedelta(hours=1)
    assert kb.search("recall", filters=SearchFilters(since=later)) == []
    assert len(kb.search("recall", filters=SearchFilters(until=later))) == 2
    assert kb.search("the of and") == []  # only stopwords: nothing to look for
    assert kb.search('recall" OR * NEAR(') != []  # query syntax in user text is just words
    with pytest.raises(StoreError, match="k must be"):
        kb.search("recall", k=0)


def test_a_study_knows_every_design_it_recorded_trained_or_not(kb):
    """What the offline proposers count as tried: a design whose experiment stopped before its
    first run is still tried, or a resumed study would propose it again as a duplicate."""
    study = kb.add_study("s")
    trained = kb.add_architecture("trained", MIXER, origin="evolution", study_id=study.id)
    kb.add_run(trained.id, "mqar", study_id=study.id, status="succeeded")
    kb.add_architecture("untrained", MIXER + "#u\n", origin="evolution", study_id=study.id)
    kb.add_architecture("elsewhere", MIXER + "#e\n", origin="evolution", study_id=kb.add_study("t").id)
    assert kb.architecture_names(study.id) == {"trained", "untrained"}
    assert kb.architecture_code_hashes(study.id) == {code_hash(MIXER), code_hash(MIXER + "#u\n")}


def test_a_name_is_unique_within_its_study(kb):
    """A name another design of the study holds gets a suffix, so a name finds one design; a
    shared design (a baseline) and another study's designs do not take names from this study."""
    mine, theirs = kb.add_study("mine"), kb.add_study("theirs")
    kb.add_architecture("same", MIXER + "#b\n", origin="baseline")
    names = [
        kb.add_architecture("same", MIXER + f"#{index}\n", origin="evolution", study_id=mine.id).name
        for index in range(3)
    ]
    assert names == ["same", "same-2", "same-3"]
    assert kb.find_design(mine.id, "same-3").code.endswith("#2\n")
    assert kb.add_architecture("same", MIXER, origin="evolution", study_id=theirs.id).name == "same"


def test_a_design_is_found_by_name_or_id_within_its_study_only(kb):
    """`discover show` and `reproduce` name a design; another study's design of that name is not it."""
    mine, theirs = kb.add_study("mine"), kb.add_study("theirs")
    design = kb.add_architecture("same-name", MIXER, origin="evolution", study_id=mine.id)
    other = kb.add_architecture("same-name", MIXER + "#o\n", origin="evolution", study_id=theirs.id)
    baseline = kb.add_architecture("baseline-x", MIXER + "#b\n", origin="baseline")
    kb.add_run(baseline.id, "mqar", study_id=mine.id, status="succeeded")
    assert kb.find_design(mine.id, "same-name").id == design.id
    assert kb.find_design(theirs.id, "same-name").id == other.id
    assert kb.find_design(mine.id, design.id).id == design.id
    assert kb.find_design(theirs.id, design.id) is None
    assert kb.find_design(mine.id, "baseline-x").id == baseline.id  # trained by the study
    assert kb.find_design(theirs.id, "baseline-x") is None


def test_architectures_are_searchable_by_motivation_only_when_asked(kb):
    arch = kb.add_architecture("gated", MIXER, origin="llm", motivation="a forget gate on the state")
    assert kb.search("forget gate") == []
    assert ids(kb.search("forget gate", filters=SearchFilters(kinds=("architecture",)))) == [arch.id]


def test_new_knowledge_base_carries_the_starter_cognition_base(kb_location):
    entries = sorted(STARTER_COGNITION.glob("*.md"))
    assert len(entries) >= 25
    with KnowledgeBase(kb_location) as kb:
        with kb.reading() as session:
            documents = session.exec(
                Document.__table__.select().where(Document.collection == "cognition")
            ).all()
        assert len(documents) == len(entries)
        assert all(set(doc.meta) >= {"design_insight", "when_it_helps", "how_to_implement", "reference"}
                   for doc in documents)  # fmt: skip
        hits = kb.search("delta rule error correcting state update", k=3)
        assert hits and "delta" in (hits[0].title + hits[0].text).lower()
        assert kb.remove_collection("cognition") == len(entries)
        assert kb.search("delta rule error correcting state update") == []
        assert kb.count(Chunk) == 0
    with KnowledgeBase(kb_location) as kb:  # reopening does not bring it back
        assert kb.count(Document) == 0


def test_hybrid_search_finds_what_words_alone_miss(kb_location, openai_server):
    embedder = OpenAIEmbedder("test-embed", base_url=openai_server.base_url, api_key="test")
    with KnowledgeBase(kb_location, embedder=embedder, starter=None) as kb:
        decay = kb.add_finding("Per-channel decay of the state stabilises training", "supports")
        kb.add_finding("Rotary embeddings on queries and keys", "inconclusive")
        lexical_only = KnowledgeBase(kb_location, starter=None)
        assert lexical_only.search("forgetting") == []
        lexical_only.close()
        assert ids(kb.search("forgetting", k=1)) == [decay.id]
        assert kb.count(SearchItem) == 2
    assert any(path.endswith("/embeddings") for path, _ in openai_server.requests)


# ----------------------------------------------------------------------------- ingestion


def test_ingestion_is_idempotent_and_replaces_changed_files(kb, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "decay.md").write_text("# Decay\n\nA learned decay per head keeps the state bounded.\n")
    (notes / "papers.jsonl").write_text(
        json.dumps({"title": "Token shift", "abstract": "Mixing the previous token into keys."}) + "\n"
    )
    assert kb.add_path(notes) == (2, 0)
    assert kb.add_path(notes) == (0, 2)
    chunks = kb.count(Chunk)
    assert ids(kb.search("bounded")) and ids(kb.search("previous token"))
    (notes / "decay.md").write_text("# Decay\n\nA learned decay per head forgets old pairs.\n")
    assert kb.add_path(notes) == (1, 1)
    assert kb.count(Document) == 2 and kb.count(Chunk) == chunks
    assert kb.search("bounded") == []
    assert kb.search("forgets old pairs")[0].title == "Decay"


# ----------------------------------------------------------------------------- export / import


def fill_study(kb: KnowledgeBase) -> Study:
    study = kb.add_study("exported", budget="1h")
    arch = kb.add_architecture("a", MIXER, origin="llm", motivation="low-rank state", study_id=study.id)
    base = kb.add_baseline("softmax", MIXER + "#s\n", source="builtin")
    run = kb.add_run(
        arch.id, "mqar", study_id=study.id, status="failed", failure_reason="NaN loss at step 40"
    )
    kb.add_run(base.architecture_id, "mqar", study_id=study.id, status="succeeded", fitness=0.5)
    kb.add_finding("Low-rank state diverges", "refutes", evidence_run_ids=[run.id], study_id=study.id)
    kb.log_llm_call("coder", "m", study_id=study.id)
    ledger = Ledger(Budget(text="1h", device_seconds=3600), DatabaseLedgerStore(kb, study.id))
    ledger.reserve("job-1", 60.0)
    ledger.charge("job-1", 42.0, 1)
    kb.add_study("other study")
    return study


def test_export_import_round_trip_merges_without_duplicates(kb_location, tmp_path):
    out = tmp_path / "study.jsonl"
    with KnowledgeBase(kb_location, starter=None) as source:
        study = fill_study(source)
        written = export(source, out, study.id)
    assert written == {"study": 1, "architecture": 2, "run": 2, "finding": 1, "llmcall": 1, "budgetentry": 2}
    with KnowledgeBase(tmp_path / "target.db", starter=None) as target:
        added, skipped = import_file(target, out)
        assert added == written and skipped == 0
        assert import_file(target, out) == ({}, sum(written.values()))  # idempotent
        assert target.get(Study, study.id).budget == "1h"
        failed = [r for r in target_runs(target) if r.status == "failed"]
        assert failed[0].failure_reason == "NaN loss at step 40"  # failed experiments travel too
        assert ids(target.search("low-rank diverges")) != []
        ledger = Ledger(Budget(text="1h", device_seconds=3600), DatabaseLedgerStore(target, study.id))
        assert ledger.spent == 42.0


def target_runs(kb):
    with kb.reading() as session:
        return list(session.exec(Run.__table__.select()))


def test_import_of_a_damaged_file_writes_nothing(kb, tmp_path):
    source = KnowledgeBase(tmp_path / "source.db", starter=None)
    study = fill_study(source)
    out = tmp_path / "study.jsonl"
    export(source, out, study.id)
    source.close()
    lines = out.read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]  # a torn line in the middle of the file
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreError, match=r"study.jsonl:4: "):
        import_file(kb, out)
    assert kb.count(Study) == kb.count(Architecture) == 0
    out.write_text('{"not": "an export"}\n')
    with pytest.raises(StoreError, match="not a discover export"):
        import_file(kb, out)


def test_export_of_an_unknown_study_is_refused(kb, tmp_path):
    with pytest.raises(StoreError, match="no study"):
        export(kb, tmp_path / "x.jsonl", "missing")
    assert not (tmp_path / "x.jsonl").exists()


# ----------------------------------------------------------------------------- migrations


def test_an_older_schema_is_migrated_with_its_data(kb_location):
    with KnowledgeBase(kb_location, starter=None) as kb:
        finding = kb.add_finding("kept across the upgrade", "supports")

        def add_column(ops):  # what a later release's migration might do
            ops.add_column("finding", Column("reviewer", Text, nullable=True))

        future = SCHEMA_VERSION + 1
        migrations = {future: add_column}
        assert upgrade(kb._begin_schema_change, create_index, target=future, migrations=migrations) is False
        with kb.reading() as session:
            columns = {c["name"] for c in inspect(session.connection()).get_columns("finding")}
            version = session.execute(text("SELECT version FROM schemaversion")).scalar_one()
        assert "reviewer" in columns and version == future
        assert kb.get(Finding, finding.id).statement == "kept across the upgrade"
        assert ids(kb.search("upgrade")) == [finding.id]
    with pytest.raises(
        SchemaError, match=f"schema version {future}, but this discover reads up to {SCHEMA_VERSION}"
    ):
        KnowledgeBase(kb_location, starter=None)


def test_a_version_1_knowledge_base_gains_experiment_links(kb_location):
    """Schema 2 links architectures and LLM calls to experiments; a version-1 database (as the
    previous release wrote it) is upgraded in place when opened, its rows kept."""
    with KnowledgeBase(kb_location, starter=None) as kb:
        architecture = kb.add_architecture("old", "code = 1", "human", "from before the upgrade")
        with kb._begin_schema_change() as connection:  # back to what release 1 created
            ops = Operations(MigrationContext.configure(connection))
            for table in ("architecture", "llmcall"):
                with ops.batch_alter_table(table) as batch:
                    batch.drop_column("experiment_id")
            ops.drop_table("verification")  # schema 3's
            connection.execute(text("UPDATE schemaversion SET version = 1"))
    with KnowledgeBase(kb_location, starter=None) as kb:
        with kb.reading() as session:
            for table in ("architecture", "llmcall"):
                columns = {c["name"] for c in inspect(session.connection()).get_columns(table)}
                assert "experiment_id" in columns, table
            assert session.execute(text("SELECT version FROM schemaversion")).scalar_one() == SCHEMA_VERSION
        assert kb.get(Architecture, architecture.id).motivation == "from before the upgrade"
        linked = kb.add_architecture("new", "code = 2", "human", experiment_id="e00007")
        assert kb.get(Architecture, linked.id).experiment_id == "e00007"
        assert kb.study_verifications("any") == []  # schema 3 added the verifications table


def test_a_version_3_knowledge_base_gains_replications(kb_location):
    """Schema 4: a verification may replicate another, on a fresh held-out draw; the verifications
    release 3 stored are kept, as originals on the study's own held-out set."""
    with KnowledgeBase(kb_location, starter=None) as kb:
        kb.add_verification(
            Verification(study_id="s", architecture_id="a", baseline="b", task="mqar", status="complete")
        )
        with kb._begin_schema_change() as connection:  # back to what release 3 created
            ops = Operations(MigrationContext.configure(connection))
            with ops.batch_alter_table("verification") as batch:
                batch.drop_column("replicates")
                batch.drop_column("heldout_draw")
            connection.execute(text("UPDATE schemaversion SET version = 3"))
    with KnowledgeBase(kb_location, starter=None) as kb:
        (kept,) = kb.study_verifications("s")
        assert kept.replicates is None and kept.heldout_draw == 0 and kept.baseline == "b"


def test_a_version_4_knowledge_base_gains_hypotheses(kb_location):
    """Schema 5: an architecture keeps its hypothesis; the designs release 4 stored keep their
    motivation and have an empty hypothesis."""
    with KnowledgeBase(kb_location, starter=None) as kb:
        old = kb.add_architecture("old", "code = 1", "llm", "from before the upgrade")
        with kb._begin_schema_change() as connection:  # back to what release 4 created
            ops = Operations(MigrationContext.configure(connection))
            with ops.batch_alter_table("architecture") as batch:
                batch.drop_column("hypothesis")
            connection.execute(text("UPDATE schemaversion SET version = 4"))
    with KnowledgeBase(kb_location, starter=None) as kb:
        kept = kb.get(Architecture, old.id)
        assert kept.hypothesis == "" and kept.motivation == "from before the upgrade"
        new = kb.add_architecture("new", "code = 2", "llm", "m", hypothesis="gates keep what recall needs")
        assert kb.get(Architecture, new.id).hypothesis == "gates keep what recall needs"


def test_a_foreign_database_is_not_taken_over(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE mine (x)").connection.commit()
    with pytest.raises(SchemaError, match="not a knowledge base"):
        KnowledgeBase(path)


# ----------------------------------------------------------------------------- concurrency


def write_findings(location: str, worker: int, count: int) -> None:
    with KnowledgeBase(location, starter=None) as kb:
        for n in range(count):
            kb.add_finding(f"worker {worker} finding {n} about gating", "inconclusive", tags=[f"w{worker}"])


def test_concurrent_writer_processes_lose_nothing(kb_location):
    KnowledgeBase(kb_location, starter=None).close()
    writers = [FORK.Process(target=write_findings, args=(kb_location, w, 40)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    with KnowledgeBase(kb_location, starter=None) as kb:
        assert kb.count(Finding) == kb.count(SearchItem) == 160
        assert len(kb.search("gating", k=500)) == 160


def first_open_races(location: str) -> None:
    KnowledgeBase(location).close()


def test_processes_creating_one_database_at_once_create_it_once(kb_location):
    openers = [FORK.Process(target=first_open_races, args=(kb_location,)) for _ in range(3)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(timeout=120)
        assert opener.exitcode == 0
    with KnowledgeBase(kb_location) as kb:
        assert kb.count(Document) == len(list(STARTER_COGNITION.glob("*.md")))


def write_until_killed(location: str, done) -> None:
    with KnowledgeBase(location, starter=None) as kb:
        n = 0
        while True:
            kb.add_finding(f"finding {n}", "supports")
            n += 1
            done.value = n


def test_kill_9_loses_no_committed_write(kb_location):
    KnowledgeBase(kb_location, starter=None).close()
    done = FORK.Value("q", 0, lock=False)
    writer = FORK.Process(target=write_until_killed, args=(kb_location, done))
    writer.start()
    deadline = time.monotonic() + 60
    while done.value < 20 and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    returned = done.value
    assert returned >= 20
    with KnowledgeBase(kb_location, starter=None) as kb:
        with kb.reading() as session:
            statements = {row[0] for row in session.execute(text("SELECT statement FROM finding"))}
            if kb.backend == "sqlite":
                assert session.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        assert {f"finding {n}" for n in range(returned)} <= statements
        assert len(statements) <= returned + 1
        assert kb.count(SearchItem) == len(statements)


def race_for_budget(location: str, start, admitted, worker: int) -> None:
    with KnowledgeBase(location, starter=None) as kb:
        ledger = Ledger(Budget(text="10s", device_seconds=10.0), DatabaseLedgerStore(kb, "study-1"))
        start.wait(timeout=60)
        admitted[worker] = sum(ledger.reserve(f"w{worker}-{k}", 3.0) for k in range(4))


def test_ledger_in_the_database_never_over_commits(kb_location):
    KnowledgeBase(kb_location, starter=None).close()
    start = FORK.Barrier(4)
    admitted = FORK.Array("i", 4, lock=False)
    racers = [FORK.Process(target=race_for_budget, args=(kb_location, start, admitted, w)) for w in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
        assert racer.exitcode == 0
    assert sum(admitted) == 3  # 10 s holds three 3 s jobs, whoever wins
    with KnowledgeBase(kb_location, starter=None) as kb:
        ledger = Ledger(Budget(text="10s", device_seconds=10.0), DatabaseLedgerStore(kb, "study-1"))
        assert ledger.reserved == 9.0 and len(ledger.outstanding()) == 3
        assert Ledger(Budget(text="1s", device_seconds=1.0), DatabaseLedgerStore(kb, "other")).left == 1.0
        assert kb.count(BudgetEntry) == 3


# ----------------------------------------------------------------------------- dedup


def test_duplicates_are_caught_by_function_and_by_motivation(kb):
    gated = kb.add_architecture(
        "gated", MIXER, origin="llm", functional_hash="abc",
        motivation="Add a data-dependent forget gate to linear attention so old pairs fade from the state",
    )  # fmt: skip
    kb.add_architecture("conv", MIXER, origin="llm", motivation="Short causal convolution on keys and values")
    renamed = is_duplicate(kb, "something else entirely", functional_hash="abc")
    assert renamed.duplicate and renamed.nearest[0].architecture_id == gated.id
    assert renamed.nearest[0].why == "same functional hash"
    reworded = is_duplicate(
        kb, "Add a data-dependent forget gate to linear attention so that old pairs fade from the state"
    )
    assert reworded.duplicate and reworded.nearest[0].architecture_id == gated.id
    assert reworded.nearest[0].similarity >= 0.85
    fresh = is_duplicate(kb, "Mixture of two memories selected by a router per token", functional_hash="new")
    assert not fresh.duplicate
    related = is_duplicate(kb, "A forget gate on the keys of a convolution")
    assert not related.duplicate and related.nearest  # near enough to show, not a duplicate
    with pytest.raises(ValueError, match="threshold"):
        is_duplicate(kb, "x", threshold=0.0)


def test_the_database_file_and_its_folder_are_created(tmp_path):
    location = Path(tmp_path / "study" / "knowledge.db")
    KnowledgeBase(location, starter=None).close()
    assert location.exists()


def test_population_feeds_parent_policies_from_scored_runs(kb):
    from discover.knowledge_base.parents import make_policy

    study = kb.add_study("s")
    strong = kb.add_architecture("strong", MIXER, origin="llm", study_id=study.id)
    weak = kb.add_architecture("weak", MIXER + "#w\n", origin="llm", study_id=study.id)
    kb.add_architecture("child", MIXER + "#c\n", origin="evolution", parent_ids=[strong.id])
    result = {"params": 1000, "flops_per_token": 1e5}
    for arch, fitness in ((strong, 0.7), (strong, 0.8), (weak, 0.3)):
        kb.add_run(arch.id, "mqar", study_id=study.id, status="succeeded", fitness=fitness, result=result)
    kb.add_run(weak.id, "mqar", study_id=study.id, status="failed", failure_reason="timeout")
    kb.add_run(weak.id, "lm", study_id=study.id, status="succeeded", fitness=0.9)
    population = {member.id: member for member in kb.population("mqar", study.id)}
    assert population[strong.id].fitness == 0.8 and population[strong.id].children == 1
    assert population[weak.id].fitness == 0.3 and population[weak.id].descriptors == (3.0, 5.0)
    assert make_policy("top_k", k=1).select(list(population.values()), 3, seed=0) == [strong.id] * 3
    assert kb.population("mqar", "another study") == []
