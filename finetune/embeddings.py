"""Image descriptors from a VLM's vision encoder: the image tokens the language model sees, mean-pooled.

A fixed-length vector per image (the language model's hidden size), L2-normalised so that a dot product is
the cosine similarity. LoRA adapters train the language model only, so the descriptor is the same for every
trained version of a task and can be indexed once. torch and transformers are imported when the first
embedder is built, never at module import (the gateway imports this module lazily as well).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any


class ImageEmbedder:
    """Loads the model once (on first use) and embeds images; thread-safe."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = str(model_dir)
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self._processor = AutoProcessor.from_pretrained(self.model_dir)
        model = AutoModelForImageTextToText.from_pretrained(self.model_dir, dtype="float32")
        self._model = model.eval()

    def embed(self, images: list[bytes]) -> list[list[float]]:
        """One unit-length vector per encoded image."""
        import torch
        from PIL import Image

        with self._lock:
            if self._model is None:
                self._load()
            pictures = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
            inputs = self._processor.image_processor(images=pictures, return_tensors="pt")
            with torch.no_grad():
                out = self._model.get_image_features(**inputs)
        per_image = getattr(out, "pooler_output", out)
        if isinstance(per_image, torch.Tensor):
            per_image = [per_image[i] for i in range(per_image.shape[0])]
        vectors = []
        for tokens in per_image:
            pooled = tokens.float().reshape(-1, tokens.shape[-1]).mean(dim=0)
            vectors.append(torch.nn.functional.normalize(pooled, dim=0).tolist())
        return vectors
