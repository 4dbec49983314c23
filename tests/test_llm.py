"""The agents' LLM client through the real openai client against a local scripted HTTP server."""

import json

import pytest
from pydantic import BaseModel

from discover.agents.llm import LLM, CallRecord, DollarCapReached, LLMError, LLMSettings, parse_answer


class Plan(BaseModel):
    hypothesis: str
    steps: list[str]


GOOD = json.dumps({"hypothesis": "gating fixes recall", "steps": ["add a gate", "train"]})
MESSAGES = [{"role": "user", "content": "propose a mixer"}]


@pytest.fixture
def client(openai_server, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-do-not-record")
    calls: list[CallRecord] = []
    settings = LLMSettings(
        base_url=openai_server.base_url, api_key_env="TEST_LLM_KEY", models={"coder": "coder-model"},
        default_model="plan-model", timeout_s=2.0, max_retries=2, retry_backoff_s=0.01,
        prices={"plan-model": (1000.0, 2000.0)},
    )  # fmt: skip
    return LLM(settings, record=calls.append), calls, openai_server


def test_a_valid_answer_is_parsed_and_recorded_with_its_cost(client):
    llm, calls, server = client
    server.script = [{"content": f"Here you go:\n```json\n{GOOD}\n```"}]
    plan = llm.ask("researcher", MESSAGES, Plan)
    assert plan.steps == ["add a gate", "train"]
    (call,) = calls
    assert (call.role, call.model, call.status) == ("researcher", "plan-model", "ok")
    assert call.prompt_tokens > 0 and call.completion_tokens > 0
    assert call.cost_usd == pytest.approx((call.prompt_tokens * 1000 + call.completion_tokens * 2000) / 1e6)
    sent = server.requests[-1][1]
    assert sent["model"] == "plan-model" and "JSON schema" in sent["messages"][-1]["content"]
    assert "sk-secret" not in repr(calls)  # the key is never recorded


def test_rate_limits_and_server_errors_are_retried(client):
    llm, calls, server = client
    server.script = [{"status": 429}, {"status": 500}, {"content": GOOD}]
    assert llm.ask("coder", MESSAGES, Plan).hypothesis == "gating fixes recall"
    assert len(server.requests) == 3  # each one recorded, by its outcome
    assert [(c.status, c.error_kind) for c in calls] == [("error", "rate_limited"), ("error", "server_error"),
                                                         ("ok", None)]  # fmt: skip
    assert {c.model for c in calls} == {"coder-model"}


def test_a_malformed_answer_gets_one_repair(client):
    llm, calls, server = client
    server.script = [{"content": '{"hypothesis": "x"}'}, {"content": GOOD}]
    assert llm.ask("researcher", MESSAGES, Plan).steps == ["add a gate", "train"]
    assert [c.status for c in calls] == ["ok", "malformed", "ok"]
    repair = server.requests[-1][1]["messages"][-1]["content"]
    assert "not usable" in repair and "steps" in repair  # the model is told what was wrong


@pytest.mark.parametrize(
    "replies, reason",
    [
        (["not json at all", "still not json"], "held no JSON object"),
        (["", ""], "the reply was empty"),
        (["{" + "x" * 200_000 + "}", "{}"], "Field required"),
    ],
)
def test_answers_that_stay_malformed_fail_the_step_cleanly(client, replies, reason):
    llm, calls, server = client
    server.script = [{"content": reply} for reply in replies]
    with pytest.raises(LLMError, match="malformed answer after one repair") as error:
        llm.ask("analyst", MESSAGES, Plan)
    assert reason in str(error.value) and "\n" not in str(error.value)
    assert [c.status for c in calls] == ["ok", "malformed", "ok", "malformed"]


def test_a_stalled_endpoint_times_out_and_is_recorded(client):
    llm, calls, server = client
    server.script = [{"sleep": 3, "content": GOOD}] * 3
    with pytest.raises(LLMError, match="did not answer in time"):
        llm.ask("researcher", MESSAGES, Plan)
    assert [(c.status, c.error_kind) for c in calls] == [("error", "timeout")] * 3
    assert len(server.requests) == 3  # the first try and two retries


def test_persistent_server_errors_fail_the_step(client):
    llm, calls, server = client
    server.script = [{"status": 503}] * 3
    with pytest.raises(LLMError, match="HTTP 503"):
        llm.ask("researcher", MESSAGES, Plan)
    assert calls[-1].status == "error" and "503" in calls[-1].error


def test_the_dollar_cap_stops_further_calls(client):
    llm, _, server = client
    llm.settings.dollar_cap = 0.001
    server.script = [{"content": GOOD}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)  # this call's cost crosses the cap
    assert llm.spent_usd >= 0.001
    with pytest.raises(DollarCapReached, match="dollar cap reached"):
        llm.ask("researcher", MESSAGES, Plan)
    assert len(server.requests) == 1  # refused before any request


def test_parse_answer_reads_bare_and_fenced_objects():
    assert parse_answer(f"prefix {GOOD} suffix", Plan).hypothesis == "gating fixes recall"
    assert parse_answer(f"```\n{GOOD}\n```", Plan).steps[0] == "add a gate"
    with pytest.raises(ValueError, match="steps"):
        parse_answer('{"hypothesis": "h", "steps": "not a list"}', Plan)


def test_calls_land_in_the_knowledge_base(openai_server, tmp_path):
    from sqlmodel import select

    from discover.knowledge_base.schema import LLMCall
    from discover.knowledge_base.store import KnowledgeBase

    with KnowledgeBase(tmp_path / "kb.db", starter=None) as kb:
        study = kb.add_study("llm")
        settings = LLMSettings(base_url=openai_server.base_url, default_model="m", max_retries=0)
        llm = LLM(settings, record=lambda call: kb.log_llm_call(study_id=study.id, **call.model_dump()))
        openai_server.script = [{"content": "nope"}, {"content": GOOD}]
        llm.ask("researcher", MESSAGES, Plan)
        with kb.reading() as session:
            rows = session.exec(select(LLMCall).order_by(LLMCall.created_at)).all()
        assert [(r.role, r.status) for r in rows] == [("researcher", "ok"), ("researcher", "malformed"),
                                                      ("researcher", "ok")]  # fmt: skip
        assert all(r.study_id == study.id for r in rows)
