"""Regular expressions for bounded numbers, which outlines_core's JSON-Schema compiler does not produce.

``integer_range_regex(lo, hi)`` matches exactly the decimal integers in ``[lo, hi]``.
``decimal_range_regex(lo, hi)`` matches decimals without exponent (``-?INT(.DIGITS)?``, at most 6 decimals)
whose value lies in ``[lo, hi]``. Open sides stop at ``NUMBER_LIMIT`` (10**15): a model, a small one above
all, may otherwise write digits until ``max_tokens``. ``step_values_regex`` lists a small grid's values.
All output uses only syntax that Python's ``re``, Rust's ``regex`` (outlines_core), xgrammar and guidance
read alike: literals, ``[...]`` classes, ``(?:...)`` groups, ``|``, ``?``, ``*``, ``{m,n}``.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from finetune.variables import FRACTION_DIGITS, NUMBER_LIMIT, canonical_float_text

ANY_FRACTION = rf"(?:\.[0-9]{{1,{FRACTION_DIGITS}}})?"
MAX_GRID_VALUES = 512


def _alt(parts: list[str]) -> str:
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    return "(?:" + "|".join(parts) + ")"


def _digit_class(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    if lo == 0 and hi == 9:
        return "[0-9]"
    return f"[{lo}-{hi}]"


def _same_length(x: str, y: str) -> str:
    """Digit strings of equal length n between x and y inclusive (x <= y)."""
    if x == y:
        return x
    if len(x) == 1:
        return _digit_class(int(x), int(y))
    rest = len(x) - 1
    if x[1:] == "0" * rest and y[1:] == "9" * rest:
        return _digit_class(int(x[0]), int(y[0])) + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}")
    if x[0] == y[0]:
        return x[0] + _same_length(x[1:], y[1:])
    parts = [x[0] + _same_length(x[1:], "9" * rest)]
    if int(y[0]) - int(x[0]) > 1:
        parts.append(_digit_class(int(x[0]) + 1, int(y[0]) - 1) + f"[0-9]{{{rest}}}")
    parts.append(y[0] + _same_length("0" * rest, y[1:]))
    return _alt(parts)


def _natural_range(lo: int, hi: int | None) -> str:
    """Non-negative integers in [lo, hi] without leading zeros (hi None: unbounded)."""
    parts: list[str] = []
    top = hi if hi is not None else 10 ** len(str(lo)) - 1
    for width in range(len(str(lo)), len(str(top)) + 1):
        first = 0 if width == 1 else 10 ** (width - 1)
        a, b = max(lo, first), min(top, 10**width - 1)
        if a <= b:
            parts.append(_same_length(str(a), str(b)))
    if hi is None:
        parts.append(f"[1-9][0-9]{{{len(str(top))},}}")
    return _alt(parts)


def integer_range_regex(lo: int | None, hi: int | None) -> str:
    """Decimal integers in [lo, hi]; an open side (None) stops at ``NUMBER_LIMIT``. ValueError if empty."""
    lo = -(NUMBER_LIMIT - 1) if lo is None else lo
    hi = NUMBER_LIMIT - 1 if hi is None else hi
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"empty integer range [{lo}, {hi}]")
    parts: list[str] = []
    if lo is None or lo < 0:  # negative part: -[max(1, -hi), -lo]
        neg_lo = 1 if hi is None or hi >= 0 else -hi
        parts.append("-" + _natural_range(neg_lo, None if lo is None else -lo))
    if hi is None or hi >= 0:
        parts.append(_natural_range(max(lo or 0, 0), hi))
    return _alt(parts)


def _fraction_digits(value: Decimal) -> str:
    """Digits after the point of a non-negative decimal, without trailing zeros ("" when whole)."""
    text = format(value, "f")
    return text.split(".", 1)[1].rstrip("0") if "." in text else ""


def _any_digits(room: int) -> str:
    return "" if room <= 0 else f"[0-9]{{0,{room}}}"


def _zeros(room: int) -> str:
    return "" if room <= 0 else f"0{{0,{room}}}"


def _digits_at_least(s: str, room: int) -> str:
    """Digit strings d of 1..room digits with 0.d >= 0.s (s: no trailing zeros, not empty, len <= room)."""
    head, rest = int(s[0]), s[1:]
    parts = []
    if head < 9:
        parts.append(_digit_class(head + 1, 9) + _any_digits(room - 1))
    parts.append(str(head) + (_digits_at_least(rest, room - 1) if rest else _any_digits(room - 1)))
    return _alt(parts)


def _digits_at_most(s: str, room: int) -> str:
    """Digit strings d of 1..room digits with 0.d <= 0.s (s: no trailing zeros, not empty, len <= room)."""
    head, rest = int(s[0]), s[1:]
    parts = []
    if head > 0:
        parts.append(_digit_class(0, head - 1) + _any_digits(room - 1))
    parts.append(str(head) + (f"(?:{_digits_at_most(rest, room - 1)})?" if rest else _zeros(room - 1)))
    return _alt(parts)


def _fraction_at_least(s: str) -> str:
    return ANY_FRACTION if not s else r"\." + _digits_at_least(s, FRACTION_DIGITS)


def _fraction_at_most(s: str) -> str:
    if not s:
        return rf"(?:\.0{{1,{FRACTION_DIGITS}}})?"
    return r"(?:\." + _digits_at_most(s, FRACTION_DIGITS) + ")?"


def _unsigned_decimal_range(lo: Decimal, hi: Decimal) -> str:
    """Decimals >= 0 in [lo, hi] written ``INT(.DIGITS)?`` with at most ``FRACTION_DIGITS`` decimals."""
    lo_int, lo_frac = int(lo), _fraction_digits(lo)
    if int(hi) == lo_int:
        hi_frac = _fraction_digits(hi)
        if not lo_frac:
            return f"{lo_int}{_fraction_at_most(hi_frac)}"
        return f"{lo_int}" + _between_fractions(lo_frac, hi_frac)
    parts = [f"{lo_int}{_fraction_at_least(lo_frac)}"]
    if int(hi) - 1 >= lo_int + 1:
        parts.append(_natural_range(lo_int + 1, int(hi) - 1) + ANY_FRACTION)
    parts.append(f"{int(hi)}{_fraction_at_most(_fraction_digits(hi))}")
    return _alt(parts)


def _between_fractions(lo: str, hi: str) -> str:
    """``.d`` with 0.lo <= 0.d <= 0.hi, lo non-empty (so the fraction is required)."""
    if not hi:
        raise ValueError("upper fraction below lower fraction")
    common = 0
    while common < min(len(lo), len(hi)) and lo[common] == hi[common]:
        common += 1
    prefix, room = lo[:common], FRACTION_DIGITS - common
    lo_rest, hi_rest = lo[common:], hi[common:]
    if not lo_rest:  # lo is a prefix of hi: digits after the prefix at most hi_rest
        tail = f"(?:{_digits_at_most(hi_rest, room)})?" if hi_rest else _zeros(room)
        return r"\." + prefix + tail
    if not hi_rest:  # hi a prefix of lo means hi < lo (lo has more non-zero digits)
        raise ValueError("upper fraction below lower fraction")
    a, b = int(lo_rest[0]), int(hi_rest[0])
    after_lo = _digits_at_least(lo_rest[1:], room - 1) if lo_rest[1:] else _any_digits(room - 1)
    parts = [str(a) + after_lo]
    if b - a > 1:
        parts.append(_digit_class(a + 1, b - 1) + _any_digits(room - 1))
    after_hi = f"(?:{_digits_at_most(hi_rest[1:], room - 1)})?" if hi_rest[1:] else _zeros(room - 1)
    parts.append(str(b) + after_hi)
    return r"\." + prefix + _alt(parts)


def decimal_range_regex(lo: float | None, hi: float | None) -> str:
    """Decimals (no exponent, at most ``FRACTION_DIGITS`` decimals) in [lo, hi]; an open side stops at
    ``NUMBER_LIMIT``. Raises ValueError if no such number exists."""
    top = Decimal(NUMBER_LIMIT) - Decimal(1).scaleb(-FRACTION_DIGITS)
    quantum = Decimal(1).scaleb(-FRACTION_DIGITS)
    low = -top if lo is None else max(-top, Decimal(repr(float(lo)))).quantize(quantum, ROUND_CEILING)
    high = top if hi is None else min(top, Decimal(repr(float(hi)))).quantize(quantum, ROUND_FLOOR)
    if low > high:
        raise ValueError(f"empty number range [{lo}, {hi}]")
    parts: list[str] = []
    if low < 0:  # negative part: -x with x in [max(0, -hi), -lo]
        parts.append("-" + _unsigned_decimal_range(Decimal(0) if high >= 0 else -high, -low))
    if high >= 0:
        parts.append(_unsigned_decimal_range(max(low, Decimal(0)), high))
    return _alt(parts)


def grid_values(lo: float, hi: float, step: float) -> list[Decimal] | None:
    """The values lo + k*step within [lo, hi], or None when there are more than ``MAX_GRID_VALUES``."""
    base, top, size = (Decimal(repr(float(v))) for v in (lo, hi, step))
    count = int((top - base) / size) + 1
    if count > MAX_GRID_VALUES:
        return None
    return [base + k * size for k in range(count)]


def step_values_regex(lo: float, hi: float, step: float, integer: bool) -> str | None:
    """An alternation of every value on the grid (floats also without ``.0`` when whole), or None if large."""
    values = grid_values(lo, hi, step)
    if values is None:
        return None
    texts: list[str] = []
    for value in values:
        if integer:
            texts.append(str(int(value)))
            continue
        text = canonical_float_text(float(value)).replace(".", r"\.")
        texts.append(text[: -len(r"\.0")] + r"(?:\.0)?" if text.endswith(r"\.0") else text)
    texts.sort(key=len, reverse=True)
    return _alt(texts)


def number_regex(lo: float | None, hi: float | None, step: float | None, integer: bool) -> str:
    """The tightest regex for a number variable: a grid when stepped and small, else a range."""
    if step is not None and lo is not None and hi is not None:
        grid = step_values_regex(lo, hi, step, integer)
        if grid is not None:
            return grid
    if integer:
        return integer_range_regex(
            None if lo is None else math.ceil(lo), None if hi is None else math.floor(hi)
        )
    return decimal_range_regex(lo, hi)
