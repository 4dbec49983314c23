"""Every request to the endpoint is one recorded call, through the real openai client against the
local server: the client's own retries (backoff, Retry-After) each recorded with the kind of error,
malformed answers noted apart from requests, and the report's costs table and status counting them."""

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from discover.agents.llm import LLM, CallRecord, LLMError, LLMSettings
from discover.agents.llm_retry import Failure, retry_after, wait_s

from .test_llm import GOOD, MESSAGES, Plan


@pytest.fixture
def client(openai_server):
    calls: list[CallRecord] = []
    settings = LLMSettings(base_url=openai_server.base_url, default_model="m", timeout_s=2.0, max_retries=3,
                           retry_backoff_s=0.01)  # fmt: skip
    return LLM(settings, record=calls.append), calls, openai_server


def outcomes(calls: list[CallRecord]) -> list[tuple[str, str, str | None]]:
    return [(call.kind, call.status, call.error_kind) for call in calls]


# ----------------------------------------------------------------------------- retries, each recorded


def test_each_retry_is_a_recorded_call_and_the_answer_is_used(client):
    llm, calls, server = client
    server.script = [{"status": 500}, {"status": 500}, {"content": GOOD}]
    assert llm.ask("researcher", MESSAGES, Plan).steps == ["add a gate", "train"]
    assert len(server.requests) == 3
    assert outcomes(calls) == [("request", "error", "server_error")] * 2 + [("request", "ok", None)]
    assert "HTTP 500" in calls[0].error and calls[-1].completion_tokens > 0


def test_a_rate_limit_waits_as_long_as_retry_after_asks(client):
    llm, calls, server = client
    server.script = [{"status": 429, "headers": {"Retry-After": "1"}}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    assert outcomes(calls) == [("request", "error", "rate_limited"), ("request", "ok", None)]
    # The backoff alone would wait about 0.01 s: the second request came after the asked second.
    assert server.arrivals[1] - server.arrivals[0] >= 0.9


def test_retries_stop_at_max_retries(client):
    llm, calls, server = client
    server.script = [{"status": 503}] * 4
    with pytest.raises(LLMError, match=r"HTTP 503.*scripted 503 \(sent 4 times\)$"):
        llm.ask("analyst", MESSAGES, Plan)
    assert outcomes(calls) == [("request", "error", "server_error")] * 4 and len(server.requests) == 4


@pytest.mark.parametrize("status, kind", [(401, "auth"), (404, "not_found"), (400, "bad_request")])
def test_an_error_retrying_cannot_fix_is_recorded_once(client, status, kind):
    llm, calls, server = client
    server.script = [{"status": status, "message": "no"}]
    with pytest.raises(LLMError, match=f"HTTP {status}"):
        llm.ask("researcher", MESSAGES, Plan)
    assert outcomes(calls) == [("request", "error", kind)] and len(server.requests) == 1


def test_retry_after_is_read_in_its_three_forms():
    assert retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after(httpx.Headers({"Retry-After": date})) <= 30
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx.Headers({})) is None


def test_waits_back_off_with_jitter_and_are_capped():
    failure = Failure("server_error", "HTTP 500")
    for retry in range(4):
        assert 0.5 * 2**retry <= wait_s(retry, failure, 1.0, 60.0) <= 2**retry
    assert 30.0 <= wait_s(10, failure, 1.0, 60.0) <= 60.0
    assert wait_s(0, Failure("rate_limited", "HTTP 429", retry_after_s=7.0), 1.0, 60.0) == 7.0
    assert wait_s(0, Failure("rate_limited", "HTTP 429", retry_after_s=600.0), 1.0, 60.0) == 60.0


# ----------------------------------------------------------------------------- notes, status and report


def test_a_malformed_answer_is_a_note_not_a_request(client):
    llm, calls, server = client
    server.script = [{"content": "no JSON here"}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    assert outcomes(calls) == [("request", "ok", None), ("note", "malformed", None), ("request", "ok", None)]
    assert len(server.requests) == 2
    note = calls[1]
    assert (note.prompt_tokens, note.completion_tokens, note.cost_usd) == (0, 0, 0.0)


def test_status_and_the_report_count_requests_errors_by_kind_and_dollars(bare_study, openai_server):
    from discover.agents.record import RECORD_FILE, StudyRecord
    from discover.agents.status import study_status
    from discover.report.site import build_report

    study = bare_study
    record = StudyRecord(study_id=study.study_id, heldout_seed=1, created_at="2026-12-06T00:00:00")
    (study.folder / RECORD_FILE).write_text(record.model_dump_json())
    settings = LLMSettings(base_url=openai_server.base_url, default_model="plan-model", retry_backoff_s=0.01,
                           prices={"plan-model": (1000.0, 2000.0)})  # fmt: skip
    llm = LLM(
        settings, record=lambda call: study.kb.log_llm_call(study_id=study.study_id, **call.model_dump())
    )
    openai_server.script = [
        {"status": 500}, {"status": 429, "headers": {"retry-after-ms": "10"}}, {"content": "no JSON here"},
        {"content": GOOD},
    ]  # fmt: skip
    llm.ask("researcher", MESSAGES, Plan)

    status = study_status(study.folder)
    assert status.llm_requests == 4  # two errors and two answers; the malformed one's note is no request
    assert status.llm_usd == pytest.approx(llm.spent_usd) and llm.spent_usd > 0
    costs = build_report(study.folder).read_text().split('id="costs"')[1]
    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", costs) if "<td>researcher</td>" in row)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[:5] == ["researcher", "plan-model", "4", "1 rate_limited, 1 server_error", "1"]
    assert float(cells[6]) == pytest.approx(llm.spent_usd, abs=1e-4)
    assert "requests</th>" in costs and "errors by kind</th>" in costs


def test_a_version_5_knowledge_base_gains_call_kinds(kb_location):
    """Schema 6: LLM call rows say request or note, and a failed request's kind of error; a
    malformed answer recorded before is a note, everything else a request."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import text

    from discover.knowledge_base.store import KnowledgeBase

    with KnowledgeBase(kb_location, starter=None) as kb:
        answered = kb.log_llm_call("researcher", "m", status="ok")
        noted = kb.log_llm_call("researcher", "m", status="malformed", error="held no JSON object")
        with kb._begin_schema_change() as connection:  # back to what release 5 created
            ops = Operations(MigrationContext.configure(connection))
            with ops.batch_alter_table("llmcall") as batch:
                batch.drop_column("kind")
                batch.drop_column("error_kind")
            connection.execute(text("UPDATE schemaversion SET version = 5"))
    with KnowledgeBase(kb_location, starter=None) as kb:
        from discover.knowledge_base.schema import LLMCall

        assert kb.get(LLMCall, answered.id).kind == "request" and kb.get(LLMCall, noted.id).kind == "note"
        assert kb.get(LLMCall, noted.id).error_kind is None
        failed = kb.log_llm_call("coder", "m", status="error", error_kind="timeout")
        assert kb.get(LLMCall, failed.id).error_kind == "timeout"


def test_the_client_itself_never_retries(client):
    llm, _, server = client
    assert llm.client.max_retries == 0
    llm.settings.max_retries = 0
    server.script = [{"status": 500}, {"content": GOOD}]
    with pytest.raises(LLMError, match="HTTP 500"):
        llm.ask("researcher", MESSAGES, Plan)
    assert len(server.requests) == 1  # max_retries=0 is ours to set, and the client adds none
