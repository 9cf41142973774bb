"""vlm-gateway: an OpenAI-compatible gateway for vision-language models on vLLM."""

__version__ = "0.1.0"
