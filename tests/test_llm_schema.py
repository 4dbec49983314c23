"""JSON-schema mode, through the real openai client against the local server: a structured answer's
schema is sent as response_format where the endpoint takes it; an endpoint that refuses it is asked
with the prompt alone, from then on; the coder's file is never asked for in schema mode."""

import json
from typing import Any

import pytest

from discover.agents import roles
from discover.agents.llm import LLM, CallRecord, LLMError, LLMSettings
from discover.agents.llm_schema import strict_schema

from .test_llm import GOOD, MESSAGES, Plan
from .test_llm_answers import FILE
from .test_llm_limits import WANTS_COMPLETION_TOKENS

# What pydantic writes for the roles' value constraints: not all endpoints' schema modes take them.
VALUE_KEYWORDS = "minLength maxLength minItems maxItems minimum maximum default pattern".split()


@pytest.fixture
def client(openai_server):
    calls: list[CallRecord] = []
    settings = LLMSettings(base_url=openai_server.base_url, default_model="m", timeout_s=2.0, max_retries=0)
    return LLM(settings, record=calls.append), calls, openai_server


def sent(server) -> list[dict]:
    return [body for path, body in server.requests if path.endswith("/chat/completions")]


def objects(node: Any) -> list[dict]:
    """Every object schema inside a schema."""
    if isinstance(node, list):
        return [found for item in node for found in objects(item)]
    if not isinstance(node, dict):
        return []
    inside = [found for value in node.values() for found in objects(value)]
    return [node, *inside] if node.get("type") == "object" else inside


def test_an_endpoint_with_schema_mode_is_sent_the_answers_schema_but_not_for_the_coders_file(client):
    llm, calls, server = client
    server.script = [{"content": GOOD}, {"content": f"```python\n{FILE}```"}]
    assert llm.ask("researcher", MESSAGES, Plan).steps == ["add a gate", "train"]
    assert llm.ask("coder", MESSAGES, roles.CandidateCode, code_field="code").code == FILE
    structured, code = sent(server)
    assert structured["response_format"]["type"] == "json_schema"
    schema = structured["response_format"]["json_schema"]
    assert schema["name"] == "Plan" and schema["strict"] is True
    assert schema["schema"]["properties"].keys() == {"hypothesis", "steps"}
    assert schema["schema"]["required"] == ["hypothesis", "steps"]
    assert "JSON schema" in structured["messages"][-1]["content"]  # the prompt still names it
    assert "response_format" not in code  # a file in a code block is no JSON object
    assert [c.status for c in calls] == ["ok", "ok"]


def test_an_endpoint_without_schema_mode_is_asked_with_the_prompt_alone_from_then_on(client):
    llm, calls, server = client
    server.schema_mode = False
    server.script = [{"content": GOOD}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    llm.ask("analyst", MESSAGES, Plan)  # the same model: not asked in schema mode again
    assert ["response_format" in body for body in sent(server)] == [True, False, False]
    assert [(c.status, c.error_kind) for c in calls] == [("error", "bad_request"), ("ok", None), ("ok", None)]
    assert "response_format" in calls[0].error  # the refusal is recorded, as the request it was


@pytest.mark.parametrize(
    "status, message",
    [
        (400, "Invalid schema for response_format 'Plan': In context=(), 'minimum' is not permitted."),
        (400, "json_schema response format is not supported by this model"),
        (422, "Unprocessable Entity"),
    ],
)
def test_the_ways_endpoints_refuse_schema_mode_are_recognised(client, status, message):
    llm, _, server = client
    server.script = [{"status": status, "message": message}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    assert ["response_format" in body for body in sent(server)] == [True, False]


def test_a_token_parameter_refusal_keeps_schema_mode(client):
    llm, _, server = client
    server.script = [{"status": 400, "message": WANTS_COMPLETION_TOKENS}, {"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    second = sent(server)[1]
    assert "max_completion_tokens" in second and "response_format" in second
    assert llm.without_schema_mode == set()


def test_prompt_mode_never_sends_a_schema(client):
    llm, _, server = client
    llm.settings.structured = "prompt"
    server.script = [{"content": GOOD}]
    llm.ask("researcher", MESSAGES, Plan)
    assert "response_format" not in sent(server)[0]


def test_schema_mode_required_fails_the_step_where_the_endpoint_lacks_it(client):
    llm, _, server = client
    llm.settings.structured = "schema"
    server.schema_mode = False
    with pytest.raises(LLMError, match=r"HTTP 400.*response_format"):
        llm.ask("researcher", MESSAGES, Plan)
    assert len(sent(server)) == 1


@pytest.mark.parametrize("schema", [roles.ResearchPlan, roles.AnalystReport, roles.JudgeScore])
def test_the_roles_schemas_are_sent_in_strict_form(schema):
    """Strict mode wants every object closed, with all its fields required, and takes only part of
    JSON Schema: the value constraints stay in the prompt's schema and in validation."""
    strict = strict_schema(schema.model_json_schema())
    for node in objects(strict):
        assert node["additionalProperties"] is False and node["required"] == list(node["properties"])
    text = json.dumps(strict)
    assert not [keyword for keyword in VALUE_KEYWORDS if f'"{keyword}"' in text]
    if schema is roles.AnalystReport:  # the draft's optional tags are required of the model
        assert strict["$defs"]["FindingDraft"]["required"] == ["statement", "verdict", "tags"]
