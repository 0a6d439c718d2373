"""The reading contract's field rules, read from its pydantic models, for checks without a model; pure.

``SHAPES[kind]`` holds, for each field of the kind's model, a ``Rule`` derived from the field's type and
metadata (bounds, ``allow_inf_nan``, length, pattern, literal choices, and the field's own
after-validators, which ``check`` runs as they are). A check may be stricter than pydantic -- that
only sends a value to pydantic -- but never laxer: metadata that transforms or loosens a value (or
a model-level validator) is refused when the rules are built, and that kind gets no shape.

>>> from urbanpulse.contract import Kind
>>> check(SHAPES[Kind.TRAFFIC].rules["speed_kmh"], 40)
40.0
>>> check(SHAPES[Kind.TRAFFIC].rules["speed_kmh"], 251.0)
Traceback (most recent call last):
...
urbanpulse.gateway.rules.IrregularError
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import annotated_types
from pydantic import AfterValidator, AllowInfNan, Strict, StringConstraints
from pydantic.fields import FieldInfo

from urbanpulse.contract import READING_MODELS, Kind, Reading

FIXED = ("device_id", "time")  # fields every reading has, set by the gateway's parsers themselves


class IrregularError(Exception):
    """A value the rules cannot prove valid: the full (pydantic) path decides."""


@dataclass(frozen=True, slots=True)
class Rule:
    """What the contract accepts in one field."""

    type: Literal["float", "int", "str", "literal", "datetime"]
    low: float = -math.inf
    high: float = math.inf
    finite: bool = False  # allow_inf_nan=False
    min_length: int = 0
    max_length: float = math.inf
    pattern: re.Pattern[str] | None = None
    choices: frozenset[str] = frozenset()
    checks: tuple[Callable[[Any], Any], ...] = ()  # the field's after-validators
    # A number whose range alone refuses NaN and infinities, and nothing else to check (set from the above).
    bounded: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        finite = math.isfinite(self.low) and math.isfinite(self.high)
        object.__setattr__(self, "bounded", self.type in ("int", "float") and not self.checks and finite)  # frozen


_TYPES: dict[object, Literal["float", "int", "str", "datetime"]] = {
    float: "float",
    int: "int",
    str: "str",
    datetime: "datetime",
}


def _unsupported(what: object) -> TypeError:
    return TypeError(f"no rule for {what!r}")


def _type(annotation: Any) -> dict[str, Any]:
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if not all(isinstance(c, str) for c in choices):
            raise _unsupported(annotation)
        return {"type": "literal", "choices": frozenset(choices)}
    if annotation not in _TYPES:
        raise _unsupported(annotation)
    return {"type": _TYPES[annotation]}


def _constraint(meta: object) -> dict[str, Any]:
    """What one metadata item adds to a rule; raises TypeError for one that transforms or loosens."""
    if isinstance(meta, annotated_types.Ge):
        return {"low": meta.ge}
    if isinstance(meta, annotated_types.Le):
        return {"high": meta.le}
    if isinstance(meta, AllowInfNan):
        return {"finite": not meta.allow_inf_nan}
    if isinstance(meta, Strict):
        return {}  # ``check`` is strict whatever this says
    if isinstance(meta, StringConstraints) and not (
        meta.strip_whitespace or meta.to_upper or meta.to_lower or meta.ascii_only
    ):
        return {
            "min_length": meta.min_length or 0,
            "max_length": math.inf if meta.max_length is None else meta.max_length,
            "pattern": None if meta.pattern is None else re.compile(str(meta.pattern)),
        }
    if isinstance(meta, AfterValidator) and len(inspect.signature(meta.func).parameters) == 1:
        return {"checks": (typing.cast(Callable[[Any], Any], meta.func),)}
    raise _unsupported(meta)


def rule(info: FieldInfo) -> Rule:
    """The field's rule; raises TypeError for metadata it does not know."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) != 1 or info.default is not None:
            raise _unsupported(annotation)
        annotation = inner[0]
    values = _type(annotation)
    checks: tuple[Callable[[Any], Any], ...] = ()
    for meta in info.metadata:
        found = _constraint(meta)
        checks += found.pop("checks", ())
        values.update(found)
    return Rule(**values, checks=checks)


def check(field_rule: Rule, value: Any) -> Any:
    """``value`` as the model stores it; raises IrregularError when the model might refuse it."""
    kind = field_rule.type
    if kind == "float":
        if type(value) is not float and type(value) is not int:
            raise IrregularError
        value = float(value)  # strict mode takes an int for a float field and stores a float
        if not field_rule.low <= value <= field_rule.high or (field_rule.finite and not math.isfinite(value)):
            raise IrregularError
    elif kind == "int":
        if type(value) is not int or not field_rule.low <= value <= field_rule.high:
            raise IrregularError
    elif kind == "str":
        if (
            type(value) is not str
            or not field_rule.min_length <= len(value) <= field_rule.max_length
            or (field_rule.pattern is not None and field_rule.pattern.fullmatch(value) is None)
        ):
            raise IrregularError
    elif kind == "literal":
        if type(value) is not str or value not in field_rule.choices:
            raise IrregularError
    elif type(value) is not datetime:
        raise IrregularError
    for after in field_rule.checks:
        value = after(value)  # a ValueError here: the model refuses it
    return value


def check_column(field_rule: Rule, values: list[Any]) -> list[Any]:
    """``check`` over a column; a column of datetimes in one go."""
    if field_rule.type == "datetime" and set(map(type, values)) == {datetime}:
        for after in field_rule.checks:
            values = list(map(after, values))
        return values
    return [check(field_rule, value) for value in values]


@dataclass(frozen=True, slots=True)
class Shape:
    """A kind's reading model as rules."""

    model: type[Reading]
    rules: dict[str, Rule]
    required: frozenset[str]  # required fields besides device_id and time
    defaults: dict[str, Any]  # every field in model order, with its default (None for required ones)


def shape(model: type[Reading]) -> Shape:
    """The model's shape; raises TypeError when it validates more than its fields' metadata says."""
    decorators = model.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or (decorators.model_validators)
        or model.__pydantic_post_init__ is not None
    ):
        raise _unsupported(model)
    fields = model.model_fields
    return Shape(
        model=model,
        rules={name: rule(info) for name, info in fields.items()},
        required=frozenset(name for name, info in fields.items() if info.is_required() and name not in FIXED),
        defaults={name: None if info.is_required() else info.default for name, info in fields.items()},
    )


def _shapes() -> dict[Kind, Shape]:
    out = {}
    for kind, model in READING_MODELS.items():
        with contextlib.suppress(TypeError):
            out[kind] = shape(model)
    return out


SHAPES = _shapes()
"""The kinds whose models the rules can read (all of them today; a test says so)."""
