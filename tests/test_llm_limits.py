"""Requests fitted to what the model accepts, through the real openai client against the local
server: the token-limit parameter a model wants, a completion limit cut to fit the context (as
vLLM refuses it), a prompt too long for the context asked again showing less, per-role limits."""

import json

import pytest
from pydantic import BaseModel

from discover.agents import roles
from discover.agents.llm import LLM, CallRecord, LLMSettings
from discover.agents.llm_limits import MARGIN

from .test_prompts import CONTEXTS


class Plan(BaseModel):
    hypothesis: str
    steps: list[str]


GOOD = {"content": json.dumps({"hypothesis": "gating fixes recall", "steps": ["add a gate", "train"]})}
MESSAGES = [{"role": "user", "content": "propose a mixer"}]
WANTS_COMPLETION_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
    "instead."
)
VLLM_CONTEXT = (
    "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens (808 in the "
    "messages, 8192 in the completion). Please reduce the length of the messages or completion."
)
PROMPT_TOO_LONG = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 "
    "tokens. Please reduce the length of the messages."
)


@pytest.fixture
def client(openai_server):
    calls: list[CallRecord] = []
    settings = LLMSettings(
        base_url=openai_server.base_url, default_model="scripted", max_retries=0, timeout_s=5.0,
        token_limits={"coder": 16000},
    )  # fmt: skip
    return LLM(settings, record=calls.append), calls, openai_server


def sent(server) -> list[dict]:
    return [body for path, body in server.requests if "chat" in path]


def test_a_model_that_wants_max_completion_tokens_gets_it_and_keeps_it(client):
    llm, calls, server = client
    server.script = [{"status": 400, "message": WANTS_COMPLETION_TOKENS}, GOOD, GOOD]
    llm.ask("researcher", MESSAGES, Plan)
    llm.ask("researcher", MESSAGES, Plan)
    first, second, third = sent(server)
    assert first["max_tokens"] == 8192 and "max_completion_tokens" not in first
    assert second["max_completion_tokens"] == 8192 and "max_tokens" not in second
    assert third["max_completion_tokens"] == 8192  # remembered for the model: no second refusal
    assert [call.status for call in calls] == ["error", "ok", "ok"]  # the refusal is recorded


def test_a_completion_limit_beyond_the_context_is_cut_to_fit(client):
    llm, _, server = client
    server.script = [{"status": 400, "message": VLLM_CONTEXT}, GOOD]
    assert llm.ask("researcher", MESSAGES, Plan).steps == ["add a gate", "train"]
    assert sent(server)[1]["max_tokens"] == 4096 - 808 - MARGIN


def test_each_role_has_its_own_token_limit(client):
    llm, _, server = client
    server.script = [GOOD, GOOD]
    llm.ask("coder", MESSAGES, Plan)
    llm.ask("analyst", MESSAGES, Plan)
    assert [body["max_tokens"] for body in sent(server)] == [16000, 8192]


def test_a_prompt_too_long_for_the_context_is_asked_again_showing_half_as_much(client):
    llm, _, server = client
    context = CONTEXTS["researcher"] | {
        "documents": [{"title": f"idea {n}", "text": f"document number {n}"} for n in range(8)]
    }
    plan = {"name": "gated_mix", "hypothesis": "a gate helps recall", "motivation": "gates select",
            "design_plan": "gate the values by the input"}  # fmt: skip
    server.script = [{"status": 400, "message": PROMPT_TOO_LONG}, {"content": json.dumps(plan)}]
    assert roles.ask(llm, None, "researcher", context, roles.ResearchPlan).name == "gated_mix"
    first, second = (body["messages"][0]["content"] for body in sent(server))
    assert "document number 7" in first and "document number 3" in second
    assert "document number 4" not in second and len(second) < len(first)
