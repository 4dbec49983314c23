"""JSON-schema mode: a structured answer's schema sent as the request's `response_format`, so that
an endpoint that supports it (OpenAI, vLLM, Ollama, llama.cpp's server) constrains the answer to
it. Endpoints differ in what JSON Schema they take (OpenAI's strict mode allows a subset), so only
the answer's shape is sent: types, fields, enums, nesting. The value constraints (lengths, ranges,
patterns) stay in the prompt's full schema and in the pydantic validation every answer goes through.
An endpoint that refuses the field is detected from its error (`rejects_schema_mode`) and asked
with the prompt alone from then on (`LLM`).
"""

from __future__ import annotations

from typing import Any

import openai
from pydantic import BaseModel

# The keywords sent: the shape of an answer, as every schema mode takes it.
SHAPE = frozenset({"type", "properties", "required", "items", "anyOf", "enum", "const", "$defs", "title",
                   "description"})  # fmt: skip
NAMED = frozenset({"properties", "$defs"})  # maps whose keys are names, not keywords
# What an endpoint says when it refuses the field (a 422 says it with its status).
REFUSAL_WORDS = ("response_format", "response format", "json_schema", "structured output", "not supported",
                 "unsupported")  # fmt: skip


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__[:64],
            "schema": strict_schema(schema.model_json_schema()),
            "strict": True,
        },
    }


def strict_schema(node: dict[str, Any]) -> dict[str, Any]:
    """The schema's shape in the form strict mode requires: every object closed
    (additionalProperties false) with all its fields required, and nothing beside a $ref."""
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    shape: dict[str, Any] = {}
    for key, value in node.items():
        if key in NAMED:
            shape[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            shape[key] = strict_schema(value)
        elif key == "anyOf":
            shape[key] = [strict_schema(variant) for variant in value]
        elif key in SHAPE:
            shape[key] = value
    if "properties" in node:
        shape |= {"required": list(node["properties"]), "additionalProperties": False}
    return shape


def rejects_schema_mode(exc: openai.APIError) -> bool:
    """Whether the endpoint refused a request for its response_format: HTTP 422 (a server whose
    request model lacks the field) or a 400 that names it or says something is not supported.
    Asked only after the token-limit refusals (`llm_limits.refit`), which say "not supported" too."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422):
        return False
    message = str(exc.message).lower()
    return exc.status_code == 422 or any(word in message for word in REFUSAL_WORDS)
