"""The LLM client's own retry policy. The openai client is made with max_retries=0, so each HTTP
request reaches `LLM` and is recorded as one call; a failed one is named by kind here, and those
worth asking again (rate limits, server errors, timeouts, dropped connections) wait an
exponential backoff with jitter, or what the endpoint's Retry-After asked, up to a cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import openai

if TYPE_CHECKING:
    import httpx

TRANSIENT = frozenset({"rate_limited", "server_error", "timeout", "connection"})
STATUS_KINDS = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found", 408: "timeout",
                422: "bad_request", 429: "rate_limited"}  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """A request that failed: its kind (a word the costs table counts by) and one line saying why."""

    kind: str
    reason: str
    retry_after_s: float | None = None  # how long the endpoint asked us to wait, where it said

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT


def failure_of(exc: openai.APIError) -> Failure:
    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: first
        return Failure("timeout", "the endpoint did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection", "cannot reach the endpoint")
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        kind = STATUS_KINDS.get(code, "server_error" if code >= 500 else "client_error")
        reason = f"the endpoint answered HTTP {code}: {str(exc.message).splitlines()[0][:200]}"
        return Failure(kind, reason, retry_after(exc.response.headers))
    return Failure("other", str(exc).splitlines()[0][:200])


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the endpoint asked to wait: `retry-after-ms` (OpenAI's), else `Retry-After` in
    seconds or as an HTTP date; None where it asked nothing readable."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" not in headers:
            return None
        value = headers["retry-after"]
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (ValueError, TypeError):  # a malformed header is no instruction
        return None


def wait_s(retry: int, failure: Failure, backoff_s: float, max_wait_s: float) -> float:
    """The wait before retry number `retry` (0 first): what the endpoint asked, else backoff_s
    doubled per retry; both capped at max_wait_s. The backoff is jittered so that clients that
    failed together do not retry together."""
    if failure.retry_after_s is not None:
        return min(failure.retry_after_s, max_wait_s)
    return min(backoff_s * 2**retry, max_wait_s) * random.uniform(0.5, 1.0)
