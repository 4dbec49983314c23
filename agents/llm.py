"""The LLM client the agents share: one OpenAI-compatible endpoint, a model per role, answers that
must validate against a pydantic schema, every call recorded, and a cap on dollars spent.

    llm = LLM(LLMSettings(base_url="http://localhost:8000/v1", models={"coder": "qwen2.5-coder"}))
    plan = llm.ask("researcher", messages, ResearchPlan)

Works with OpenAI, vLLM, Ollama, llama.cpp's server: anything that speaks /chat/completions.
Transient failures (429, 5xx, timeouts, dropped connections) are retried by the openai client with
exponential backoff; a malformed answer gets one repair re-ask. What still fails raises LLMError
with one line, after the call is recorded, so the loop can record the failed step and go on.
The API key is read from the environment and never recorded.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Answer = TypeVar("Answer", bound=BaseModel)
MAX_ANSWER_CHARS = 100_000  # longer replies are treated as malformed, never parsed


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None  # None: OpenAI's API
    api_key_env: str = "OPENAI_API_KEY"  # the variable's name; the key itself is never stored
    models: dict[str, str] = Field(default_factory=dict)  # role -> model
    default_model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=180.0, gt=0)  # per request, so a stalled stream ends
    max_retries: int = Field(default=4, ge=0)
    max_tokens: int = Field(default=8192, gt=0)
    # model -> (dollars per million prompt tokens, dollars per million completion tokens)
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    dollar_cap: float | None = Field(default=None, ge=0)

    def model_for(self, role: str) -> str:
        return self.models.get(role, self.default_model)


class CallRecord(BaseModel):
    """One request to the endpoint, as the knowledge base's LLMCall stores it."""

    role: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    status: str = "ok"  # ok, malformed or error
    error: str | None = None


class LLMError(RuntimeError):
    """A step the LLM could not complete; the message is one line."""


class DollarCapReached(LLMError):
    pass


class LLM:
    def __init__(
        self,
        settings: LLMSettings,
        record: Callable[[CallRecord], None] | None = None,
        spent_usd: float = 0.0,  # carried over on resume, from the recorded calls
    ):
        self.settings = settings
        self.record = record or (lambda call: None)
        self.spent_usd = spent_usd
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=os.environ.get(settings.api_key_env) or "unused",  # local servers need none
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    def ask(self, role: str, messages: list[dict[str, str]], schema: type[Answer]) -> Answer:
        """The role's answer as a validated `schema` instance. A malformed answer is shown its
        error and asked once more."""
        conversation = [*messages, {"role": "user", "content": answer_instructions(schema)}]
        reply = self._complete(role, conversation)
        try:
            return parse_answer(reply, schema)
        except ValueError as first:
            self._note_malformed(role, str(first))
            conversation += [
                {"role": "assistant", "content": reply[:4000]},
                {
                    "role": "user",
                    "content": f"That answer was not usable: {first}. {answer_instructions(schema)}",
                },
            ]
        reply = self._complete(role, conversation)
        try:
            return parse_answer(reply, schema)
        except ValueError as second:
            self._note_malformed(role, str(second))
            raise LLMError(f"{role}: malformed answer after one repair: {second}") from None

    def _complete(self, role: str, messages: list[dict[str, str]]) -> str:
        cap = self.settings.dollar_cap
        if cap is not None and self.spent_usd >= cap:
            raise DollarCapReached(f"LLM dollar cap reached: ${self.spent_usd:.2f} of ${cap:.2f} spent")
        model = self.settings.model_for(role)
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=self.settings.max_tokens,  # type: ignore[arg-type]
            )
        except openai.APIError as exc:
            reason = describe_api_error(exc)
            self.record(CallRecord(role=role, model=model, latency_s=time.perf_counter() - started,
                                   status="error", error=reason))  # fmt: skip
            raise LLMError(f"{role}: {reason}") from None
        usage = response.usage
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        cost = self.cost(model, prompt, completion)
        self.spent_usd += cost
        self.record(CallRecord(role=role, model=model, prompt_tokens=prompt, completion_tokens=completion,
                               cost_usd=cost, latency_s=time.perf_counter() - started))  # fmt: skip
        choice = response.choices[0] if response.choices else None
        return (choice.message.content or "") if choice else ""

    def _note_malformed(self, role: str, reason: str) -> None:
        self.record(
            CallRecord(role=role, model=self.settings.model_for(role), status="malformed", error=reason)
        )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        per_prompt, per_completion = self.settings.prices.get(model, (0.0, 0.0))
        return (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6


def answer_instructions(schema: type[BaseModel]) -> str:
    return "Reply with one JSON object and nothing else, matching this JSON schema:\n" + json.dumps(
        schema.model_json_schema(), separators=(",", ":")
    )


def parse_answer(reply: str, schema: type[Answer]) -> Answer:
    """The JSON object in a reply (bare, or in a ``` fence), validated; ValueError says why not."""
    if not reply.strip():
        raise ValueError("the reply was empty")
    if len(reply) > MAX_ANSWER_CHARS:
        raise ValueError(f"the reply was {len(reply):,} characters, more than {MAX_ANSWER_CHARS:,}")
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", reply, re.DOTALL)
    text = fenced.group(1) if fenced else reply[reply.find("{") : reply.rfind("}") + 1]
    if not text:
        raise ValueError("the reply held no JSON object")
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the answer"
        raise ValueError(f"{where}: {error['msg']}") from None


def describe_api_error(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the endpoint did not answer in time (after retries)"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot reach the endpoint (after retries)"
    if isinstance(exc, openai.APIStatusError):
        return f"the endpoint answered HTTP {exc.status_code}: {str(exc.message).splitlines()[0][:200]}"
    return str(exc).splitlines()[0][:200]
