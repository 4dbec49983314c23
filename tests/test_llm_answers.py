"""Answers in the styles real models give, through the real openai client against the local server:
the coder's code fences, reasoning blocks, prose and braces around JSON, several fences, raw
newlines in JSON strings, a truncated answer and a refusal."""

import json
from types import SimpleNamespace

import pytest

from discover.agents import roles
from discover.agents.llm import LLM, CallRecord, LLMError, LLMSettings
from discover.experiments.tasks import get_task

from .test_llm import GOOD, MESSAGES, Plan

FILE = """\
import torch
import torch.nn as nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, **kwargs) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
"""
PLAN = {"name": "linear_mix", "hypothesis": "a projection is a floor", "design_plan": "one linear layer"}


@pytest.fixture
def client(openai_server):
    calls: list[CallRecord] = []
    settings = LLMSettings(base_url=openai_server.base_url, default_model="m", timeout_s=2.0, max_retries=0)
    return LLM(settings, record=calls.append), calls, openai_server


def write(llm: LLM) -> str:
    """The coder's file, through the coder's own path (prompt, answer format, parsing)."""
    study = SimpleNamespace(task=get_task("mqar"))  # no parent: the coder needs only the task
    return roles.write_candidate(study, llm, None, PLAN, None, None, [])  # type: ignore[arg-type]


def chat_requests(server) -> list[dict]:
    return [body for path, body in server.requests if path.endswith("/chat/completions")]


# ----------------------------------------------------------------------------- the coder answers in code


def test_the_coder_is_asked_for_a_python_block():
    from discover.prompts.templates import render

    context = {"task": roles.task_info(SimpleNamespace(task=get_task("mqar"))), "contract": "",
               "proposal": PLAN, "parent": None, "verdict": None, "previous_code": ""}  # fmt: skip
    assert "```python" in render("coder", context).split("## The candidate contract")[0]


def test_a_python_fence_is_the_file_without_a_re_ask(client):
    llm, calls, server = client
    server.script = [{"content": f"Here is the design.\n\n```python\n{FILE}```\n\nIt is a floor."}]
    assert write(llm) == FILE
    assert len(chat_requests(server)) == 1 and [c.status for c in calls] == ["ok"]
    assert "```python" in chat_requests(server)[0]["messages"][-1]["content"]


def test_the_last_python_fence_wins_over_earlier_sketches_and_other_fences(client):
    llm, _, server = client
    sketch = "```python\nclass Mixer:  # sketch\n    pass\n```"
    shell = "```bash\npip install torch\n```"
    server.script = [{"content": f"First a sketch:\n{sketch}\n{shell}\nThe file:\n```python\n{FILE}```\n"}]
    assert write(llm) == FILE and len(chat_requests(server)) == 1


def test_a_bare_fence_holding_python_is_the_file(client):
    llm, _, server = client
    server.script = [{"content": f"<think>a linear layer will do</think>\n```\n{FILE}```"}]
    assert write(llm) == FILE and len(chat_requests(server)) == 1


def test_the_coder_may_still_answer_in_json(client):
    llm, calls, server = client
    server.script = [{"content": json.dumps({"code": FILE})}]
    assert write(llm) == FILE and [c.status for c in calls] == ["ok"]


def test_a_coder_reply_without_code_is_repaired_once(client):
    llm, calls, server = client
    server.script = [{"content": "Here is the fixed file: class Mixer ..."}, {"content": f"```py\n{FILE}```"}]
    assert write(llm) == FILE
    assert [c.status for c in calls] == ["ok", "malformed", "ok"]
    assert "```python" in calls[1].error


# ----------------------------------------------------------------------------- structured answers


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(f"<think>Maybe {{'steps': []}}? No: {GOOD[:20]}</think>\n{GOOD}", id="think-block"),
        pytest.param(
            f'<reasoning>draft:\n```json\n{{"hypothesis": "h"}}\n```</reasoning>\n```json\n{GOOD}\n```',
            id="reasoning-block",
        ),
        pytest.param(
            f"I weighed {{gating, decay}} and {{x}}; the plan:\n{GOOD}\nHope this helps!", id="braces"
        ),
        pytest.param(
            f'Example:\n```json\n{{"hypothesis": "h"}}\n```\nCode:\n```python\nx = {{1: 2}}\n```\n'
            f'Answer:\n```json\n{GOOD}\n```\nAs a dict: ```{{"k": 1}}```',
            id="several-fences",
        ),
        pytest.param(
            '{"hypothesis": "gating fixes recall\nbecause the gate\tforgets",\n'
            ' "steps": ["add a gate", "train"]}',
            id="raw-newlines",
        ),
    ],
)
def test_structured_answers_in_real_styles_parse_without_a_re_ask(client, reply):
    llm, calls, server = client
    server.script = [{"content": reply}]
    plan = llm.ask("researcher", MESSAGES, Plan)
    assert plan.hypothesis.startswith("gating fixes recall") and plan.steps == ["add a gate", "train"]
    assert [c.status for c in calls] == ["ok"] and len(chat_requests(server)) == 1


def test_a_truncated_answer_is_named_and_asked_again_shorter(client):
    llm, calls, server = client
    server.script = [{"content": GOOD[:30], "finish_reason": "length"}, {"content": GOOD}]
    assert llm.ask("analyst", MESSAGES, Plan).steps == ["add a gate", "train"]
    assert [c.status for c in calls] == ["ok", "malformed", "ok"]
    assert "cut off at the token limit" in calls[1].error and "JSON" not in calls[1].error
    assert "shorter" in chat_requests(server)[-1]["messages"][-1]["content"]


def test_a_truncated_code_fence_is_named_as_such(client):
    llm, calls, server = client
    cut = {"content": f"```python\n{FILE[:80]}", "finish_reason": "length"}
    server.script = [cut, cut]
    with pytest.raises(LLMError, match="cut off at the token limit"):
        write(llm)
    assert [c.status for c in calls] == ["ok", "malformed", "ok", "malformed"]


def test_a_refusal_is_recorded_as_one_and_not_retried(client):
    llm, calls, server = client
    server.script = [{"refusal": "I can't help with that.", "content": None}, {"content": GOOD}]
    with pytest.raises(LLMError, match="refused: I can't help with that"):
        llm.ask("researcher", MESSAGES, Plan)
    assert len(chat_requests(server)) == 1
    (call,) = calls
    assert call.status == "refused" and call.error == "I can't help with that."


def test_a_content_filter_stop_is_a_refusal_too(client):
    llm, calls, server = client
    server.script = [{"content": "", "finish_reason": "content_filter"}]
    with pytest.raises(LLMError, match="content filter"):
        llm.ask("judge", MESSAGES, Plan)
    assert [c.status for c in calls] == ["refused"] and len(chat_requests(server)) == 1
