"""Metrics of a model version on held-out samples: per variable, plus the valid-output rate.

Pure Python, no torch. Inputs are the expected values of each held-out sample and what the model produced,
already parsed by the result template (None when the output did not parse). Per variable type:

- choices, booleans and integers: accuracy (integers also get the mean absolute error);
- floats: mean absolute error, and accuracy within a tolerance (the variable's ``step_size`` when set,
  else 1 % of its ``min_value``..``max_value`` range, else 1e-6 relative);
- strings: exact match and normalised match (case, surrounding and repeated white space, trailing
  punctuation ignored);
- arrays and objects: exact match, and for arrays also normalised set match.

An output that did not parse counts as wrong for every accuracy-like metric; errors (MAE) are averaged over
the outputs that gave a value. ``score`` is the mean of each variable's primary metric (accuracy, tolerance
accuracy for floats, normalised match for strings), so versions and the base model compare on one number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import msgspec


class VariableLike(Protocol):
    """The fields of a result-template variable that evaluation reads."""

    name: str
    type: Any
    choices: Any
    step_size: Any
    min_value: Any
    max_value: Any


class VariableMetrics(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    primary: str
    scored: int
    accuracy: float | None = None
    mae: float | None = None
    exact: float | None = None
    normalized: float | None = None


class EvaluationReport(msgspec.Struct, kw_only=True):
    samples: int
    valid_rate: float
    score: float
    variables: dict[str, VariableMetrics]


def evaluate(
    variables: Sequence[VariableLike],
    expected: Sequence[Mapping[str, Any]],
    predicted: Sequence[Mapping[str, Any] | None],
) -> EvaluationReport:
    if len(expected) != len(predicted):
        raise ValueError(f"{len(expected)} expected answers but {len(predicted)} predictions")
    n = len(expected)
    valid = sum(p is not None for p in predicted)
    per_var = {v.name: _variable_metrics(v, expected, predicted) for v in variables}
    primaries = [getattr(m, m.primary) for m in per_var.values()]
    score = sum(primaries) / len(primaries) if primaries else (valid / n if n else 0.0)
    return EvaluationReport(samples=n, valid_rate=valid / n if n else 0.0, score=score, variables=per_var)


def _type_name(variable: VariableLike) -> str:
    kind = variable.type
    return str(getattr(kind, "value", kind))


def _variable_metrics(
    variable: VariableLike,
    expected: Sequence[Mapping[str, Any]],
    predicted: Sequence[Mapping[str, Any] | None],
) -> VariableMetrics:
    kind = _type_name(variable)
    pairs = [
        (e.get(variable.name), None if p is None else p.get(variable.name))
        for e, p in zip(expected, predicted, strict=True)
    ]
    pairs = [(e, p) for e, p in pairs if e is not None]  # samples without a value for it do not count

    def metrics(primary: str, **rates: Any) -> VariableMetrics:
        return VariableMetrics(type=kind, primary=primary, scored=len(pairs), **rates)

    if variable.choices or kind in ("boolean",):
        return metrics("accuracy", accuracy=_rate(pairs, _same))
    if kind in ("integer", "float"):
        close = _within(_tolerance(variable)) if kind == "float" else _same
        return metrics("accuracy", accuracy=_rate(pairs, close), mae=_mae(pairs))
    if kind in ("string", "array"):
        alike = _same_set if kind == "array" else _same_text
        return metrics("normalized", exact=_rate(pairs, _same), normalized=_rate(pairs, alike))
    return metrics("exact", exact=_rate(pairs, _same))


def _rate(pairs: list[tuple[Any, Any]], ok: Callable[[Any, Any], bool]) -> float:
    if not pairs:
        return 0.0
    return sum(1 for e, p in pairs if p is not None and ok(e, p)) / len(pairs)


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    return bool(expected == got)


def _same_text(expected: Any, got: Any) -> bool:
    return isinstance(got, str) and _norm(got) == _norm(str(expected))


def _same_set(expected: Any, got: Any) -> bool:
    if not isinstance(got, list) or not isinstance(expected, list):
        return False
    return {_norm(str(x)) for x in expected} == {_norm(str(x)) for x in got}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _within(tolerance: Callable[[float], float]) -> Callable[[Any, Any], bool]:
    def ok(expected: Any, got: Any) -> bool:
        want, have = _number(expected), _number(got)
        return want is not None and have is not None and abs(have - want) <= tolerance(want)

    return ok


def _mae(pairs: list[tuple[Any, Any]]) -> float | None:
    errors = [abs(g - float(e)) for e, p in pairs if (g := _number(p)) is not None and _number(e) is not None]
    return sum(errors) / len(errors) if errors else None


def _tolerance(variable: VariableLike) -> Callable[[float], float]:
    if variable.step_size:
        step = float(variable.step_size)
        return lambda _e: step / 2
    if variable.min_value is not None and variable.max_value is not None:
        span = abs(float(variable.max_value) - float(variable.min_value)) * 0.01
        return lambda _e: span
    return lambda e: 1e-6 * max(1.0, abs(e))


_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.strip().casefold()).rstrip(".!?;:, ")
