"""Fitting a chat request to what the model accepts. Real endpoints answer HTTP 400 when a request
names the wrong token-limit parameter (OpenAI's reasoning models want `max_completion_tokens`) or
when the prompt plus the completion limit exceed the model's context (vLLM): both are fixable,
and 400 is never retried by the client, so `refit` reads the refusal and returns the request to
send instead. A prompt that alone fills the context cannot be fixed here: `PromptTooLong`, and
the role asking shrinks what it shows (`roles.ask`).
"""

from __future__ import annotations

import re
from typing import Any

CONTEXT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
IN_MESSAGES = re.compile(r"(\d+) (?:tokens )?in the messages", re.IGNORECASE)  # vLLM's wording
MARGIN = 32  # tokens left free: counts differ a little between tokenizers
MIN_COMPLETION = 512  # below this an answer (a whole file, for the coder) cannot fit
TOKEN_PARAMETERS = ("max_tokens", "max_completion_tokens")


class PromptTooLong(Exception):
    """The messages alone leave no room for an answer in the model's context."""


def token_parameter(request: dict[str, Any]) -> str:
    return next(name for name in TOKEN_PARAMETERS if name in request)


def refit(request: dict[str, Any], refusal: str) -> dict[str, Any] | None:
    """The request to send after the endpoint refused `request` with the message `refusal`; None
    when the refusal is about something else. PromptTooLong when only a shorter prompt can help."""
    name = token_parameter(request)
    if name == "max_tokens" and "max_completion_tokens" in refusal:
        limit = request.pop("max_tokens")
        return request | {"max_completion_tokens": limit}
    context = CONTEXT.search(refusal)
    if context is None and "context_length_exceeded" not in refusal:
        return None
    used = IN_MESSAGES.search(refusal)
    if context is None or used is None:  # the messages alone are too long (OpenAI says only that)
        raise PromptTooLong(refusal)
    room = int(context[1]) - int(used[1]) - MARGIN
    if room < MIN_COMPLETION:
        raise PromptTooLong(refusal)
    return request | {name: min(room, request[name])}


def shrink(context: Any, code_chars: int = 2000) -> Any:
    """A prompt context half the size: every list keeps its first half (at least one item), and
    code shown for reference is cut to `code_chars`."""
    if isinstance(context, list):
        return [shrink(item, code_chars) for item in context[: max(1, len(context) // 2)]]
    if isinstance(context, dict):
        return {
            key: value[:code_chars] if key == "code" and isinstance(value, str) else shrink(value, code_chars)
            for key, value in context.items()
        }
    return context
