"""A local OpenAI-compatible HTTP server for tests: the real `openai` client talks to it over HTTP.

It stands in for what cannot run here (a paid model).
- /embeddings: deterministic bag-of-words vectors; each word is folded onto a concept (a small
  synonym table, so that "forgetting" and "decay" land together, as a real embedding model would
  put them) and hashed into one of DIM dimensions.
- /chat/completions: replays `server.script`, one step per request: {"content": "..."} answers,
  {"status": 429} fails with that HTTP status (and "message", the error's text, and "headers",
  such as Retry-After, if given), {"sleep": seconds, ...} waits first. An answer may also set
  "finish_reason" (default "stop") and "refusal" (then "content" may be left out). An exhausted
  script answers 500, so a test states every request it expects. With `server.schema_mode`
  False, a request in JSON-schema mode (`response_format`) is refused with a 400, as servers
  without it answer, and takes no step.
- /models (GET): lists `server.models`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIM = 256
SYNONYMS = {
    "forgetting": "decay",
    "forget": "decay",
    "fading": "decay",
    "memory": "state",
    "recall": "retrieval",
    "remember": "retrieval",
}


def embed(text: str) -> list[float]:
    vector = [0.0] * DIM
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        concept = SYNONYMS.get(word, word)
        slot = int.from_bytes(hashlib.sha256(concept.encode()).digest()[:4], "little") % DIM
        vector[slot] += 1.0
    return vector


class Handler(BaseHTTPRequestHandler):
    server: OpenAIServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append((self.path, body))
        self.server.arrivals.append(time.monotonic())
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(inputs)]
            tokens = sum(len(t.split()) for t in inputs)
            self.reply(200, {"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip
        elif self.path.rstrip("/").endswith("/chat/completions"):
            if "response_format" in body and not self.server.schema_mode:
                message = f"response_format type '{body['response_format']['type']}' is not supported"
                self.reply(400, {"error": {"message": message, "type": "invalid_request_error"}})
                return
            step = self.server.script.pop(0) if self.server.script else {"status": 500}
            time.sleep(step.get("sleep", 0))
            if "status" in step:
                message = step.get("message", f"scripted {step['status']}")
                error = {"error": {"message": message, "type": "test"}}
                self.reply(step["status"], error, step.get("headers", {}))
                return
            content = step.get("content")
            message = {"role": "assistant", "content": content}
            if "refusal" in step:
                message["refusal"] = step["refusal"]
            prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            completion = len((content or step.get("refusal") or "").split())
            self.reply(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": step.get("finish_reason", "stop"),
                             "message": message}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            })  # fmt: skip
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            card = {"object": "model", "created": 0, "owned_by": "test"}
            models = [{"id": name, **card} for name in self.server.models]
            self.reply(200, {"object": "list", "data": models})
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def reply(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that timed out
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request, in order
        self.script: list[dict] = []
        self.schema_mode = True  # False: requests with a response_format are refused (400)
        self.models: list[str] = ["scripted"]  # what GET /models lists
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
