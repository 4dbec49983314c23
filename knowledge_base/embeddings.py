"""Dense embeddings from an OpenAI-compatible `/embeddings` endpoint, when the user configures one.

    DISCOVER_EMBEDDINGS_MODEL=text-embedding-3-small        # enables dense retrieval
    DISCOVER_EMBEDDINGS_URL=http://localhost:8000/v1        # optional; default is OpenAI's API
    DISCOVER_EMBEDDINGS_API_KEY=...                         # optional; else OPENAI_API_KEY

Nothing is downloaded from a model hub at run time: without a configured endpoint, retrieval is
lexical only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from openai import OpenAI


class OpenAIEmbedder:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None):
        self.model = model
        # The client retries connection errors, 429 and 5xx with exponential backoff itself.
        self.client = OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            max_retries=4,
            timeout=60.0,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        response = self.client.embeddings.create(model=self.model, input=list(texts))
        ordered = sorted(response.data, key=lambda item: item.index)
        return np.asarray([item.embedding for item in ordered], dtype=np.float32)


def embedder_from_environment() -> OpenAIEmbedder | None:
    model = os.environ.get("DISCOVER_EMBEDDINGS_MODEL")
    if not model:
        return None
    return OpenAIEmbedder(
        model,
        base_url=os.environ.get("DISCOVER_EMBEDDINGS_URL") or None,
        api_key=os.environ.get("DISCOVER_EMBEDDINGS_API_KEY") or None,
    )
