"""The LLM client the agents share: one OpenAI-compatible endpoint, a model per role, answers that
must validate against a pydantic schema, every call recorded, and a cap on dollars spent.

    llm = LLM(LLMSettings(base_url="http://localhost:8000/v1", models={"coder": "qwen2.5-coder"}))
    plan = llm.ask("researcher", messages, ResearchPlan)

Works with OpenAI, vLLM, Ollama, llama.cpp's server: anything that speaks /chat/completions.
Every HTTP request is recorded as one call, retries included: transient failures (429, 5xx,
timeouts, dropped connections) are retried here, not inside the openai client, by the policy in
`llm_retry` (exponential backoff with jitter, or the endpoint's Retry-After, capped). A structured
answer's schema is sent as `response_format` where the endpoint takes it (`llm_schema`). A
malformed answer gets one repair re-ask, and an answer cut off at the token limit one re-ask for a
shorter answer; each is noted beside the calls, as a note, not a request. A refusal is recorded as
one and not asked again. What still fails raises LLMError with one line, after the call is
recorded, so the loop can record the failed step and go on.

Answers are read the way real models write them: reasoning blocks (`<think>…</think>`) are dropped,
the JSON object may sit in prose or among several fences, and strings may hold raw newlines. A role
that answers with a file (the coder) gives it in a ```python block, and JSON is accepted too.
The API key is read from the environment and never recorded.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import openai
from openai.types.chat.chat_completion import ChatCompletion, Choice
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from discover.agents.llm_limits import PromptTooLong, refit, token_parameter
from discover.agents.llm_retry import Failure, failure_of, wait_s
from discover.agents.llm_schema import rejects_schema_mode, response_format

Answer = TypeVar("Answer", bound=BaseModel)
MAX_ANSWER_CHARS = 100_000  # longer replies are treated as malformed, never parsed
PYTHON_TAGS = ("python", "python3", "py")
# A fence: an opening line (``` and an optional language tag) and a closing line of its own.
FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
REASONING_TAGS = "think|thinking|reasoning"
REASONING = re.compile(rf"<({REASONING_TAGS})>.*?</\1>", re.DOTALL | re.IGNORECASE)
REASONING_END = re.compile(rf"</(?:{REASONING_TAGS})>", re.IGNORECASE)
# strict=False: raw newlines and tabs inside strings, as local models often write them, are kept.
DECODER = json.JSONDecoder(strict=False)


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None  # None: OpenAI's API
    api_key_env: str = "OPENAI_API_KEY"  # the variable's name; the key itself is never stored
    models: dict[str, str] = Field(default_factory=dict)  # role -> model
    default_model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=180.0, gt=0)  # per request, so a stalled stream ends
    max_retries: int = Field(default=4, ge=0)  # of a request that failed transiently (429, 5xx, timeout)
    retry_backoff_s: float = Field(default=1.0, gt=0)  # the first retry's wait; doubled each retry, jittered
    retry_max_wait_s: float = Field(default=60.0, gt=0)  # the longest wait, an endpoint's Retry-After too
    # auto: a structured answer's schema is sent as response_format until the endpoint refuses it;
    # schema: always sent (a refusal fails the step); prompt: never, the prompt alone names it.
    structured: Literal["auto", "schema", "prompt"] = "auto"
    max_tokens: int = Field(default=8192, gt=0)  # the answer's limit, unless token_limits names the role
    token_limits: dict[str, int] = Field(default_factory=dict)  # role -> its answer's token limit
    # model -> (dollars per million prompt tokens, dollars per million completion tokens)
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    dollar_cap: float | None = Field(default=None, ge=0)

    def model_for(self, role: str) -> str:
        return self.models.get(role, self.default_model)

    def token_limit_for(self, role: str) -> int:
        return self.token_limits.get(role, self.max_tokens)


class CallRecord(BaseModel):
    """One HTTP request to the endpoint, or a note on a reply that gave no usable answer, as the
    knowledge base's LLMCall stores it."""

    role: str
    model: str
    kind: Literal["request", "note"] = "request"  # a note (a malformed answer) sent nothing
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    status: str = "ok"  # a request: ok, refused or error; a note: malformed
    error_kind: str | None = None  # a failed request's kind (`llm_retry`): rate_limited, timeout, ...
    error: str | None = None


class LLMError(RuntimeError):
    """A step the LLM could not complete; the message is one line."""


class ContextTooLong(LLMError):
    """The prompt alone fills the model's context: the role must show less (`roles.ask`)."""


class DollarCapReached(LLMError):
    pass


class NoJSONObject(ValueError):
    """A reply with no JSON object in it at all (as opposed to one that does not validate)."""


@dataclass(frozen=True)
class Sent:
    request: dict[str, Any]  # as last sent: fitted to what the endpoint accepts
    response: ChatCompletion
    latency_s: float


@dataclass(frozen=True)
class Reply:
    text: str
    truncated: bool  # the endpoint stopped it at the token limit (finish_reason "length")
    limit: int  # that limit


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
        self.token_parameters: dict[str, str] = {}  # model -> the token-limit parameter it accepts
        self.without_schema_mode: set[str] = set()  # models whose endpoint refused response_format
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=os.environ.get(settings.api_key_env) or "unused",  # local servers need none
            timeout=settings.timeout_s,
            max_retries=0,  # retried in `_send`, so that every request is recorded
        )

    def ask(
        self, role: str, messages: list[dict[str, str]], schema: type[Answer], code_field: str | None = None
    ) -> Answer:
        """The role's answer as a validated `schema` instance. With `code_field`, the answer is a
        file: the reply's last ```python block fills that field (a JSON answer is accepted too).
        A malformed or truncated answer is shown what was wrong and asked once more."""
        instructions = code_instructions() if code_field else answer_instructions(schema)
        conversation = [*messages, {"role": "user", "content": instructions}]
        structured = None if code_field else schema  # a file is no JSON object: no schema mode
        reply = self._complete(role, conversation, structured)
        try:
            return self._read(reply, schema, code_field)
        except ValueError as first:
            self._note_malformed(role, str(first))
            conversation += [
                {"role": "assistant", "content": reply.text[:4000]},
                {"role": "user", "content": repair_request(str(first), reply.truncated, instructions)},
            ]
        reply = self._complete(role, conversation, structured)
        try:
            return self._read(reply, schema, code_field)
        except ValueError as second:
            self._note_malformed(role, str(second))
            raise LLMError(f"{role}: malformed answer after one repair: {second}") from None

    def _read(self, reply: Reply, schema: type[Answer], code_field: str | None) -> Answer:
        # A cut-off answer is never taken, even where part of it parses: an earlier draft block
        # would pass for the answer the model did not finish.
        if reply.truncated:
            raise ValueError(f"the answer was cut off at the token limit ({reply.limit:,} tokens)")
        if code_field:
            return parse_code_answer(reply.text, schema, code_field)
        return parse_answer(reply.text, schema)

    def _complete(self, role: str, messages: list[dict[str, str]], schema: type[BaseModel] | None) -> Reply:
        """The endpoint's reply; with `schema`, sent in JSON-schema mode where the endpoint takes it."""
        cap = self.settings.dollar_cap
        if cap is not None and self.spent_usd >= cap:
            raise DollarCapReached(f"LLM dollar cap reached: ${self.spent_usd:.2f} of ${cap:.2f} spent")
        model = self.settings.model_for(role)
        parameter = self.token_parameters.get(model, "max_tokens")
        request = {"model": model, "messages": messages, parameter: self.settings.token_limit_for(role)}
        if schema is not None and self._schema_mode(model):
            request["response_format"] = response_format(schema)
        sent = self._send(role, request)
        usage = sent.response.usage
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        cost = self.cost(model, prompt, completion)
        self.spent_usd += cost
        choice = sent.response.choices[0] if sent.response.choices else None
        refusal = refusal_of(choice)
        self.record(CallRecord(role=role, model=model, prompt_tokens=prompt, completion_tokens=completion,
                               cost_usd=cost, latency_s=sent.latency_s,
                               status="refused" if refusal else "ok", error=refusal))  # fmt: skip
        if refusal:  # asking again for the same thing would only be refused again
            raise LLMError(f"{role}: the model refused: {refusal}")
        limit = sent.request[token_parameter(sent.request)]
        if choice is None:
            return Reply("", truncated=False, limit=limit)
        return Reply(choice.message.content or "", truncated=choice.finish_reason == "length", limit=limit)

    def _schema_mode(self, model: str) -> bool:
        structured = self.settings.structured
        return structured == "schema" or (structured == "auto" and model not in self.without_schema_mode)

    def _send(self, role: str, request: dict[str, Any]) -> Sent:
        """The endpoint's response, every HTTP request recorded as one call. A transient failure
        is asked again after a wait (`llm_retry`); a request the endpoint refused is sent again
        changed where a change can help (`_adjust`). LLMError when neither helps."""
        retries = 0
        while True:  # retries are capped and each change is for good, so this ends
            started = time.perf_counter()
            try:
                response = self.client.chat.completions.create(**request)
                return Sent(request, response, time.perf_counter() - started)
            except openai.APIError as exc:
                failure, latency = failure_of(exc), time.perf_counter() - started
                self.record(CallRecord(role=role, model=request["model"], latency_s=latency, status="error",
                                       error_kind=failure.kind, error=failure.reason))  # fmt: skip
                if failure.transient and retries < self.settings.max_retries:
                    time.sleep(self._wait(retries, failure))
                    retries += 1
                    continue
                adjusted = self._adjust(role, request, exc)
                if adjusted is None:
                    tries = f" (sent {retries + 1} times)" if retries else ""
                    raise LLMError(f"{role}: {failure.reason}{tries}") from None
                request = adjusted

    def _wait(self, retry: int, failure: Failure) -> float:
        return wait_s(retry, failure, self.settings.retry_backoff_s, self.settings.retry_max_wait_s)

    def _adjust(self, role: str, request: dict[str, Any], exc: openai.APIError) -> dict[str, Any] | None:
        """The request to send instead of one the endpoint refused: fitted to the model's limits
        (`_refit`), or, where the endpoint refused JSON-schema mode, without it (remembered for
        the model, so later asks send the prompt alone). None where no change can help."""
        refitted = self._refit(role, request, exc)
        if refitted is not None:
            return refitted
        if "response_format" in request and self.settings.structured == "auto" and rejects_schema_mode(exc):
            self.without_schema_mode.add(request["model"])
            return {key: value for key, value in request.items() if key != "response_format"}
        return None

    def _refit(self, role: str, request: dict[str, Any], exc: openai.APIError) -> dict[str, Any] | None:
        """The request fitted to what a 400 said the model accepts (remembering the token-limit
        parameter it wants); None for any other error. ContextTooLong when only a shorter prompt
        can help."""
        if not isinstance(exc, openai.BadRequestError):
            return None
        try:
            refitted = refit(dict(request), str(exc.message))
        except PromptTooLong:
            raise ContextTooLong(f"{role}: the prompt fills the model's context") from None
        if refitted is not None and refitted == request:
            return None  # nothing left to change
        if refitted is not None:
            self.token_parameters[request["model"]] = token_parameter(refitted)
        return refitted

    def _note_malformed(self, role: str, reason: str) -> None:
        model = self.settings.model_for(role)
        self.record(CallRecord(role=role, model=model, kind="note", status="malformed", error=reason))

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        per_prompt, per_completion = self.settings.prices.get(model, (0.0, 0.0))
        return (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6


def answer_instructions(schema: type[BaseModel]) -> str:
    return "Reply with one JSON object and nothing else, matching this JSON schema:\n" + json.dumps(
        schema.model_json_schema(), separators=(",", ":")
    )


def code_instructions() -> str:
    return (
        "Reply with the complete Python file in one ```python fenced block. If you write several "
        "blocks, the last ```python block is taken as the file."
    )


def repair_request(problem: str, truncated: bool, instructions: str) -> str:
    if truncated:
        return (
            "That answer was cut off at the token limit. Answer again, shorter: keep prose and "
            f"comments brief and leave out anything the answer does not need. {instructions}"
        )
    return f"That answer was not usable: {problem}. {instructions}"


def refusal_of(choice: Choice | None) -> str | None:
    """The model's refusal, on one line, where the endpoint reported one."""
    if choice is None:
        return None
    text = choice.message.refusal
    if not text and choice.finish_reason == "content_filter":
        text = "the endpoint's content filter stopped the answer"
    return " ".join(str(text).split())[:500] if text else None


def answer_text(reply: str) -> str:
    """The reply without its reasoning blocks; ValueError where nothing usable is left."""
    if not reply.strip():
        raise ValueError("the reply was empty")
    if len(reply) > MAX_ANSWER_CHARS:
        raise ValueError(f"the reply was {len(reply):,} characters, more than {MAX_ANSWER_CHARS:,}")
    text = REASONING.sub("", reply)
    text = REASONING_END.split(text)[-1]  # some servers drop the opening tag: all before is reasoning
    if not text.strip():
        raise ValueError("the reply held only reasoning, no answer")
    return text


def json_objects(text: str) -> list[dict]:
    """The top-level JSON objects in a text, in order; braces in prose that open no object are skipped."""
    found = []
    start = text.find("{")
    while start != -1:
        try:
            value, end = DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        found.append(value)
        start = text.find("{", end)
    return found


def parse_answer(reply: str, schema: type[Answer]) -> Answer:
    """The reply's JSON answer, validated; ValueError says why there is none. Tried in turn: the
    ```json fences (last first), then every JSON object in the text (last first): models put
    drafts and examples before the answer."""
    text = answer_text(reply)
    fenced = [obj for tag, body in FENCE.findall(text) if tag.lower() == "json" for obj in json_objects(body)]
    candidates = [*reversed(fenced), *reversed(json_objects(text))]
    if not candidates:
        raise NoJSONObject("the reply held no JSON object")
    errors = []
    for candidate in candidates:
        try:
            return schema.model_validate(candidate)
        except ValidationError as exc:
            errors.append(exc)
    raise ValueError(describe_validation(errors[0])) from None  # the likeliest answer's fault


def parse_code_answer(reply: str, schema: type[Answer], field: str) -> Answer:
    """A file answer: the last ```python block fills `field` (a bare ``` block holding Python where
    no block is tagged); without one, the reply's JSON answer as `parse_answer` reads it."""
    fences = FENCE.findall(answer_text(reply))
    tagged = [body for tag, body in fences if tag.lower() in PYTHON_TAGS]
    bare = [body for tag, body in fences if not tag and looks_like_python(body)]
    if not (tagged or bare):
        try:
            return parse_answer(reply, schema)
        except NoJSONObject:
            raise ValueError("the reply held no ```python block with the file (and no JSON object)") from None
    try:
        return schema.model_validate({field: (tagged or bare)[-1]})
    except ValidationError as exc:
        raise ValueError(describe_validation(exc)) from None


def looks_like_python(body: str) -> bool:
    # A bare fence may hold a JSON answer (itself valid Python) or shell; a module has statements.
    return not body.lstrip().startswith(("{", "[")) and bool(
        re.search(r"^(import|from|class|def)\s", body, re.MULTILINE)
    )


def describe_validation(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the answer"
    return f"{where}: {error['msg']}"
