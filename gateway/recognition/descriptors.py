"""Visual descriptors for ``descriptor: 1``: the base model's vision encoder output, pooled (see
``finetune.embeddings``), computed in a worker thread of this gateway from the base model's local weights.

The embedder (torch, transformers, the weights) is loaded on the first request that asks for descriptors,
so gateways that never do pay nothing. A gateway without local weights (``--engine-url`` only) or without
the ``train`` extra answers such a request with a 400 that says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.errors import BadRequestError


class Descriptors:
    def __init__(self, model_dir: Callable[[], str | None]) -> None:
        self.model_dir = model_dir  # the served base model's local folder, or None
        self._embedder: Any = None

    def _get(self) -> Any:
        if self._embedder is None:
            folder = self.model_dir()
            if folder is None:
                raise BadRequestError(
                    "Descriptors need the base model's weights on this gateway (vlmgw serve --model).",
                    param="descriptor", code="descriptor_unavailable",
                )  # fmt: skip
            try:
                from finetune.embeddings import ImageEmbedder
            except ImportError as exc:  # pragma: no cover - the train extra is missing
                raise BadRequestError(
                    f"Descriptors need torch and transformers (the `train` extra): {exc}", param="descriptor"
                ) from None
            self._embedder = ImageEmbedder(folder)
        return self._embedder

    async def embed(self, images: list[bytes]) -> list[list[float]]:
        embedder = self._get()
        vectors: list[list[float]] = await asyncio.to_thread(embedder.embed, images)
        return vectors
