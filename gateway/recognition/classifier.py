"""How a recognition model answers: one constrained token per question, probabilities from its logprobs.

``multi_class``: the labels are listed with one-character codes (``A: cat``, ``B: dog``, ...) and the model
answers with a code, constrained to the codes (``structured_outputs.choice``), one token, with
``top_logprobs``. The probabilities are the codes' token probabilities renormalised over the codes, so they
sum to 1 and cost one engine call of one generated token per image, whatever the label names are (names
that share a prefix or span several tokens need no tree of calls). ``multi_label``: one yes/no question per
label (``Y``/``N``), each label's probability P(Y) / (P(Y) + P(N)) independent of the others.

The same prompts make the training examples (``gateway.recognition.training``), so a trained version is
asked exactly what it learned; the base model is asked the same for its zero-shot figures.
"""

from __future__ import annotations

import asyncio
import math
import string
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.openai_api.chat import ChatService
from gateway.openai_api.protocol import ChatCompletion, ChatCompletionRequest

CODES = string.ascii_uppercase[:20]  # vLLM returns at most 20 top logprobs: one per label
MAX_LABELS = len(CODES)
YES, NO = "Y", "N"


class LabelCode(msgspec.Struct):
    id: str
    name: str
    code: str


class ClassifierSpec(msgspec.Struct):
    """What a trained version classifies into: the task's type and labels, frozen at training time."""

    type: str
    labels: list[LabelCode]


def spec_for(task_type: str, labels: Sequence[tuple[uuid.UUID, str]]) -> ClassifierSpec:
    codes = [LabelCode(id=str(i), name=n, code=c) for (i, n), c in zip(labels, CODES, strict=False)]
    return ClassifierSpec(type=task_type, labels=codes)


def choice_prompt(spec: ClassifierSpec) -> str:
    listed = "\n".join(f"{label.code}: {label.name}" for label in spec.labels)
    return f"Which label fits this image? Answer with the label's letter.\n{listed}"


def tag_prompt(name: str) -> str:
    return f'Does the label "{name}" apply to this image? Answer {YES} or {NO}.'


def _request(model: str, image_uri: str, prompt: str, choices: list[str]) -> ChatCompletionRequest:
    content = [{"type": "image_url", "image_url": {"url": image_uri}}, {"type": "text", "text": prompt}]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": len(choices),
        "structured_outputs": {"choice": choices},
    }
    return msgspec.convert(body, ChatCompletionRequest)


def code_probabilities(answer: ChatCompletion, codes: Sequence[str]) -> dict[str, float]:
    """The codes' probabilities at the answer's first token, renormalised over the codes (sum 1).

    vLLM's logprobs are taken after the choice constraint's mask, so the top entries are the codes; a
    code missing from them (or a tokenizer that writes a code with a leading space) is handled by
    matching on the stripped token text and giving a missing code probability 0."""
    choice = answer.choices[0] if answer.choices else None
    tokens = choice.logprobs.content if choice is not None and choice.logprobs is not None else None
    mass = dict.fromkeys(codes, 0.0)
    if tokens:
        first = tokens[0]
        seen = [(t.token, t.logprob) for t in first.top_logprobs] or [(first.token, first.logprob)]
        for token, logprob in seen:
            text = token.strip()
            if text in mass and math.isfinite(logprob):
                mass[text] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:  # no logprobs at all: the answer itself, certain
        said = (choice.message.content or "").strip() if choice is not None else ""
        return {c: 1.0 if c == said else 0.0 for c in codes} if said in mass else dict.fromkeys(codes, 0.0)
    return {c: m / total for c, m in mass.items()}


class Classifier:
    """Label probabilities of one image from a served model (a trained version or the base model)."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def probabilities(
        self, model: str, spec: ClassifierSpec, image_uri: str, workspace: Any = None
    ) -> list[tuple[LabelCode, float]]:
        """(label, probability) pairs, most probable first."""
        if spec.type == "multi_label":
            probs = await asyncio.gather(
                *(self._tag(model, label, image_uri, workspace) for label in spec.labels)
            )
            pairs = list(zip(spec.labels, probs, strict=True))
        else:
            codes = [label.code for label in spec.labels]
            answer = await self.chat.complete(
                _request(model, image_uri, choice_prompt(spec), codes), workspace
            )
            by_code = code_probabilities(answer, codes)
            pairs = [(label, by_code[label.code]) for label in spec.labels]
        return sorted(pairs, key=lambda pair: -pair[1])

    async def _tag(self, model: str, label: LabelCode, image_uri: str, workspace: Any) -> float:
        request = _request(model, image_uri, tag_prompt(label.name), [YES, NO])
        return code_probabilities(await self.chat.complete(request, workspace), [YES, NO])[YES]
