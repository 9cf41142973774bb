"""Evaluation of a trained version on the held-out samples, next to the base model and the previous version.

Each held-out sample is asked through the gateway's own chat service (so media checks, structured output and
adapter loading are exactly what users get), greedy, constrained by its dataset's result template (the
template's regex as ``structured_outputs``), then parsed back into typed values with the template and
scored per variable by ``finetune.evaluate``. An answer that cannot be parsed (or that the structured-output
check refused) counts as invalid. The plan (held-out examples, their expected values, the templates) is
written when the job starts, so later edits to the data do not change what a version is measured on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
from PIL import Image

from finetune.evaluate import EvaluationReport, evaluate
from finetune.templates import ResultTemplate
from finetune.variables import VariableSpec
from gateway.errors import GatewayError
from gateway.openai_api.protocol import ChatCompletion, ChatCompletionRequest
from gateway.training.data import TaskData

log = logging.getLogger("vlmgw.training")

Complete = Callable[[ChatCompletionRequest], Awaitable[ChatCompletion]]


class HeldOutSample(msgspec.Struct, kw_only=True):
    sample_id: str
    dataset_id: str
    system: str | None
    user: str
    images: list[str]
    values: dict[str, Any]


class TemplateDef(msgspec.Struct, kw_only=True):
    text: str
    variables: list[VariableSpec]


class EvalPlan(msgspec.Struct, kw_only=True):
    held_out: list[HeldOutSample]
    templates: dict[str, TemplateDef]
    max_tokens: int = 256


def eval_plan(data: TaskData, max_tokens: int) -> EvalPlan:
    held_out = [
        HeldOutSample(
            sample_id=e.sample_id,
            dataset_id=data.example_dataset[e.sample_id],
            system=e.system,
            user=e.user,
            images=e.images[:1] if e.image_selection == "one" else e.images,
            values=e.values,
        )
        for e in data.held_out
    ]
    return EvalPlan(
        held_out=held_out,
        templates={
            key: TemplateDef(text=t.template.text, variables=t.variables) for key, t in data.templates.items()
        },
        max_tokens=max_tokens,
    )


def write_eval_plan(job_dir: Path, plan: EvalPlan) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "eval.json").write_bytes(msgspec.json.encode(plan))


def read_eval_plan(job_dir: Path) -> EvalPlan:
    """The job's plan, its relative image paths (store keys from the job's folder) made local paths."""
    plan = msgspec.json.decode((job_dir / "eval.json").read_bytes(), type=EvalPlan)
    for sample in plan.held_out:
        sample.images = [str(job_dir / p) if not Path(p).is_absolute() else p for p in sample.images]
    return plan


def _data_uri(path: str) -> str:
    with Image.open(path) as img:
        fmt = (img.format or "PNG").lower()
    return f"data:image/{fmt};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _request(model: str, sample: HeldOutSample, template: ResultTemplate, max_tokens: int) -> Any:
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": _data_uri(p)}} for p in sample.images
    ]
    content.append({"type": "text", "text": sample.user})
    messages: list[dict[str, Any]] = [{"role": "system", "content": sample.system}] if sample.system else []
    messages.append({"role": "user", "content": content})
    body = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
        "structured_outputs": {"regex": template.regex()},
    }
    return msgspec.convert(body, ChatCompletionRequest)


async def _answer(
    complete: Complete, model: str, sample: HeldOutSample, template: ResultTemplate, max_tokens: int
) -> dict[str, Any] | None:
    try:
        result = await complete(_request(model, sample, template, max_tokens))
    except GatewayError as exc:
        log.info("evaluation of %s on sample %s: no valid answer (%s)", model, sample.sample_id, exc)
        return None
    text = result.choices[0].message.content or "" if result.choices else ""
    try:
        return template.parse(text)
    except ValueError:
        return None


async def evaluate_model(
    complete: Complete, model: str, plan: EvalPlan, concurrency: int = 4
) -> dict[str, Any]:
    """Metrics of ``model`` on the plan's held-out samples: per dataset, plus overall score and valid rate."""
    templates = {k: ResultTemplate.compile(t.text, t.variables) for k, t in plan.templates.items()}
    limit = asyncio.Semaphore(concurrency)

    async def one(sample: HeldOutSample) -> dict[str, Any] | None:
        async with limit:
            return await _answer(complete, model, sample, templates[sample.dataset_id], plan.max_tokens)

    answers = await asyncio.gather(*(one(s) for s in plan.held_out))
    reports: dict[str, EvaluationReport] = {}
    for key, compiled in templates.items():
        pairs = [(s, a) for s, a in zip(plan.held_out, answers, strict=True) if s.dataset_id == key]
        if pairs:
            variables = list(compiled.variables.values())
            reports[key] = evaluate(variables, [s.values for s, _ in pairs], [a for _, a in pairs])
    return _overall(reports)


def _overall(reports: Mapping[str, EvaluationReport]) -> dict[str, Any]:
    total = sum(r.samples for r in reports.values())

    def weighted(attr: str) -> float:
        return float(sum(getattr(r, attr) * r.samples for r in reports.values()) / total)

    return {
        "samples": total,
        "score": round(weighted("score"), 4) if total else None,
        "valid_rate": round(weighted("valid_rate"), 4) if total else None,
        "datasets": {key: msgspec.to_builtins(r) for key, r in reports.items()},
    }


async def compare_versions(
    complete: Complete, plan: EvalPlan, new: str, base: str, previous: str | None
) -> dict[str, Any]:
    """The new version's metrics, with the base model's and the previous version's beside them."""
    if not plan.held_out:
        return {"note": "no held-out samples: nothing to evaluate on"}
    metrics: dict[str, Any] = {
        "new": await evaluate_model(complete, new, plan),
        "base": await evaluate_model(complete, base, plan),
    }
    if previous is not None:
        metrics["previous"] = await evaluate_model(complete, previous, plan)
    metrics["models"] = {"new": new, "base": base, "previous": previous}
    return metrics
