"""The training spec: what ``python -m finetune run SPEC.json`` trains, on what, with which settings.

Pure Python (msgspec, no torch), so the gateway can build, validate and store specs without the training
stack. A spec names the base model directory and the name vLLM serves it under (the adapter's
``adapter_config.json`` must carry that name, or vLLM's resolver will not load it), the examples (inline or a
JSON-lines file), held-out examples, the output directory, and hyper-parameter overrides. Every
hyper-parameter left unset takes a default chosen by the base model's size (``defaults_for``), read from
its safetensors headers without loading it.

``load_spec`` / ``validate`` collect every problem and raise one ``SpecError`` naming each field, so a
caller can show the whole list at once.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Literal

import msgspec

# Ranks vLLM's `--max-lora-rank` accepts; an adapter of another rank cannot be served.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
MAX_IMAGES_PER_EXAMPLE = 10

ImageSelection = Literal["one", "shuffled", "ordered"]
Schedule = Literal["cosine", "linear", "constant"]
Precision = Literal["auto", "bf16", "fp32"]


class SpecError(ValueError):
    """A spec that cannot be trained; ``problems`` lists every reason, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid training spec:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


class TurnPart(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A part of a chat turn's content: text, or the next image of the example's ``images``."""

    type: Literal["text", "image"]
    text: str = ""


class ChatTurn(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One message of a multi-turn example. ``weight`` 0 on an assistant turn: shown, not learned."""

    role: Literal["system", "user", "assistant"]
    content: str | list[TurnPart]
    weight: int = 1


class Example(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One chat example: optional system prompt, a user prompt with images, and the answer to learn.

    Field names match ``finetune.examples.TrainingExample`` so the gateway's examples decode as they are.
    ``image_selection``: ``ordered`` shows all images in order, ``shuffled`` all in a seeded order per epoch,
    ``one`` a single image drawn per epoch.

    Or a whole conversation (OpenAI's chat fine-tuning format): ``messages`` instead of ``user``/``target``;
    its ``image`` parts take ``images`` in order, and the loss covers every assistant turn whose ``weight``
    is 1.
    """

    user: str = ""
    target: str = ""
    messages: list[ChatTurn] | None = None
    images: list[str] = msgspec.field(default_factory=list)
    system: str | None = None
    sample_id: str = ""
    image_selection: ImageSelection = "ordered"

    def __post_init__(self) -> None:
        if self.messages is None and not self.target:
            raise ValueError("Object missing required field `target` (or `messages` for a conversation)")


class HyperParameters(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Overrides; a field left as None takes the default for the base model's size."""

    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    learning_rate: float | None = None
    learning_rate_multiplier: float | None = None  # scales the (default or given) learning rate
    schedule: Schedule | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_grad_norm: float | None = None
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    gradient_accumulation: int | None = None
    seed: int | None = None
    checkpoint_every: int | None = None
    precision: Precision | None = None
    eval_every: int | None = None  # held-out loss every N steps (and at the end); None: at the end only


class Resolved(msgspec.Struct, kw_only=True):
    """Hyper-parameters with every value decided (defaults filled in); what the trainer uses."""

    lora_rank: int
    lora_alpha: int
    lora_dropout: float
    learning_rate: float
    schedule: Schedule
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    epochs: int
    max_steps: int | None
    batch_size: int
    gradient_accumulation: int
    seed: int
    checkpoint_every: int
    precision: Precision
    eval_every: int | None = None


class TrainSpec(msgspec.Struct, kw_only=True):
    """One training job. Relative paths are relative to the spec file's directory."""

    base_model: str
    served_base_name: str
    output_dir: str
    examples: list[Example] | str
    held_out: list[Example] | str = msgspec.field(default_factory=list)
    hyperparameters: HyperParameters = msgspec.field(default_factory=HyperParameters)
    adapter_name: str | None = None


# Defaults by parameter count (upper bound, exclusive). Small models take larger learning rates; big ones
# smaller batches with more accumulation so that a 7B model fits one GPU.
_SIZE_DEFAULTS: list[tuple[float, dict[str, Any]]] = [
    (
        1e8,  # the tiny test model and toys: fast, aggressive
        {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.0, "learning_rate": 3e-3, "batch_size": 8,
         "gradient_accumulation": 1, "epochs": 3},
    ),
    (
        4e9,  # 0.5B-3B (Qwen2-VL-2B, SmolVLM)
        {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05, "learning_rate": 2e-4, "batch_size": 4,
         "gradient_accumulation": 4, "epochs": 3},
    ),
    (
        1.6e10,  # 7B-13B
        {"lora_rank": 16, "lora_alpha": 32, "lora_dropout": 0.05, "learning_rate": 1e-4, "batch_size": 2,
         "gradient_accumulation": 8, "epochs": 3},
    ),
    (
        float("inf"),
        {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05, "learning_rate": 1e-4, "batch_size": 1,
         "gradient_accumulation": 16, "epochs": 2},
    ),
]  # fmt: skip
_COMMON_DEFAULTS: dict[str, Any] = {
    "schedule": "cosine",
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "max_steps": None,
    "seed": 0,
    "checkpoint_every": 50,
    "precision": "auto",
    "eval_every": None,
}


def count_parameters(model_dir: str | Path) -> int:
    """Parameters of a safetensors model, from the file headers only (no torch, nothing loaded)."""
    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= int(dim)
                total += count
    return total


def defaults_for(n_parameters: int) -> dict[str, Any]:
    """The default hyper-parameters for a base model of ``n_parameters``."""
    for bound, values in _SIZE_DEFAULTS:
        if n_parameters < bound:
            return {**_COMMON_DEFAULTS, **values}
    raise AssertionError("unreachable: the last bound is infinite")


def resolve(hp: HyperParameters, n_parameters: int) -> Resolved:
    """Defaults for the model's size, overridden by every field the spec sets."""
    values = defaults_for(n_parameters)
    values.update({k: v for k, v in msgspec.structs.asdict(hp).items() if v is not None})
    values["learning_rate"] *= values.pop("learning_rate_multiplier", 1.0)
    return msgspec.convert(values, Resolved)


def load_spec(path: str | Path) -> TrainSpec:
    """Read, decode and validate a spec file; relative paths become absolute. Raises SpecError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([f"spec file {path}: {exc.strerror or exc}"]) from None
    try:
        spec = msgspec.json.decode(raw, type=TrainSpec)
    except msgspec.DecodeError as exc:
        raise SpecError([f"spec file {path}: {exc}"]) from None
    spec = absolutise(spec, path.parent)
    validate(spec)
    return spec


def absolutise(spec: TrainSpec, root: Path) -> TrainSpec:
    """The spec with its paths made absolute against ``root`` (the spec file's directory)."""

    def fix(p: str) -> str:
        return p if Path(p).is_absolute() else str((root / p).resolve())

    return msgspec.structs.replace(
        spec,
        base_model=fix(spec.base_model),
        output_dir=fix(spec.output_dir),
        examples=fix(spec.examples) if isinstance(spec.examples, str) else _rooted(spec.examples, root),
        held_out=fix(spec.held_out) if isinstance(spec.held_out, str) else _rooted(spec.held_out, root),
    )


def _rooted(examples: list[Example], root: Path) -> list[Example]:
    """Examples with relative image paths made absolute against ``root``."""
    return [msgspec.structs.replace(ex, images=[str(root / i) for i in ex.images]) for ex in examples]


def read_examples(source: list[Example] | str, field: str) -> list[Example]:
    """Inline examples as they are, or a JSON-lines file decoded line by line (errors name the line)."""
    if not isinstance(source, str):
        return source
    try:
        lines = Path(source).read_bytes().splitlines()
    except OSError as exc:
        raise SpecError([f"{field}: cannot read {source}: {exc.strerror or exc}"]) from None
    out: list[Example] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(msgspec.json.decode(line, type=Example))  # images: relative to the file
        except msgspec.DecodeError as exc:
            problems.append(f"{field}: {source} line {number}: {exc}")
    if problems:
        raise SpecError(problems)
    return _rooted(out, Path(source).parent)


def validate(spec: TrainSpec) -> None:
    """Raise SpecError listing every problem of a decoded spec (files, examples, hyper-parameters)."""
    problems: list[str] = []
    base = Path(spec.base_model)
    if not (base / "config.json").is_file():
        problems.append(f"base_model: {spec.base_model} is not a model directory (no config.json)")
    if not spec.served_base_name.strip():
        problems.append("served_base_name: must name the model as the engine serves it")
    examples, held_out = _examples_or_problems(spec, problems)
    if not examples and not any(p.startswith("examples") for p in problems):
        problems.append("examples: at least one training example is needed")
    for field, items in (("examples", examples), ("held_out", held_out)):
        problems += _example_problems(field, items)
    problems += hyperparameter_problems(spec.hyperparameters)
    if problems:
        raise SpecError(problems)


def _examples_or_problems(spec: TrainSpec, problems: list[str]) -> tuple[list[Example], list[Example]]:
    loaded: list[list[Example]] = []
    for field, source in (("examples", spec.examples), ("held_out", spec.held_out)):
        try:
            loaded.append(read_examples(source, field))
        except SpecError as exc:
            problems += exc.problems
            loaded.append([])
    return loaded[0], loaded[1]


def _example_problems(field: str, examples: list[Example]) -> list[str]:
    problems: list[str] = []
    for i, ex in enumerate(examples):
        where = f"{field}[{i}]" + (f" ({ex.sample_id})" if ex.sample_id else "")
        if ex.messages is not None:
            problems += chat_problems(where, ex)
        elif not ex.target.strip():
            problems.append(f"{where}.target: empty; there is nothing to learn")
        if len(ex.images) > MAX_IMAGES_PER_EXAMPLE:
            problems.append(f"{where}.images: {len(ex.images)} images; at most {MAX_IMAGES_PER_EXAMPLE}")
        for image in ex.images:
            if not Path(image).is_file():
                problems.append(f"{where}.images: {image} does not exist")
    return problems


def chat_problems(where: str, ex: Example) -> list[str]:
    """Problems of a conversation example: nothing to learn, or image parts that do not match ``images``."""
    turns = ex.messages or []
    problems: list[str] = []
    if not any(t.role == "assistant" and t.weight for t in turns):
        problems.append(f"{where}.messages: no assistant message with weight 1; there is nothing to learn")
    for j, turn in enumerate(turns):
        if turn.weight not in (0, 1):
            problems.append(f"{where}.messages[{j}].weight: must be 0 or 1 (got {turn.weight})")
        if turn.role != "user" and image_count(turn):
            problems.append(f"{where}.messages[{j}]: images are allowed in user messages only")
    shown = sum(image_count(t) for t in turns)
    if shown != len(ex.images):
        problems.append(f"{where}.messages: {shown} image parts but {len(ex.images)} images")
    return problems


def image_count(turn: ChatTurn) -> int:
    return 0 if isinstance(turn.content, str) else sum(p.type == "image" for p in turn.content)


def hyperparameter_problems(hp: HyperParameters) -> list[str]:
    """Problems with the values a spec sets (unset values take valid defaults)."""
    problems: list[str] = []

    def need(ok: bool, field: str, message: str) -> None:
        if not ok:
            problems.append(f"hyperparameters.{field}: {message} (got {getattr(hp, field)!r})")

    if hp.lora_rank is not None:
        need(hp.lora_rank in VLLM_LORA_RANKS, "lora_rank", f"vLLM serves only ranks {VLLM_LORA_RANKS}")
    for field in ("lora_alpha", "epochs", "max_steps", "batch_size", "gradient_accumulation",
                  "checkpoint_every", "eval_every"):  # fmt: skip
        value = getattr(hp, field)
        if value is not None:
            need(value >= 1, field, "must be at least 1")
    if hp.learning_rate is not None:
        need(0 < hp.learning_rate < 1, "learning_rate", "must be between 0 and 1")
    if hp.learning_rate_multiplier is not None:
        need(0 < hp.learning_rate_multiplier <= 100, "learning_rate_multiplier", "must be in (0, 100]")
    for field in ("lora_dropout", "warmup_ratio"):
        value = getattr(hp, field)
        if value is not None:
            need(0 <= value < 1, field, "must be in [0, 1)")
    for field in ("weight_decay", "max_grad_norm"):
        value = getattr(hp, field)
        if value is not None:
            need(value >= 0, field, "must not be negative")
    if hp.seed is not None:
        need(hp.seed >= 0, "seed", "must not be negative")
    return problems
