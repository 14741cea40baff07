"""Type checks of configuration values against a dataclass's annotations, before construction.

Presets and ``--set`` overrides arrive as TOML values; a value of the wrong type (a string where a
number belongs) must be refused with the field's name, not surface later as a ``TypeError`` from a
comparison deep inside ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any

# Larger integers than this are no seed, count or size anyone means; NumPy's seeding and the
# size estimates take them as int64.
_MAX_INTEGER = 2**63 - 1


def _describe(kind: Any) -> str:
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is bool:
        return "true or false"
    if kind is str:
        return "a string"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"one of {[m.value for m in kind]}"
    origin = typing.get_origin(kind)
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(kind)[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a table"
    return str(kind)


def _fits(kind: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``kind``, and the value converted to it."""
    if kind is Any or kind is object:
        return True, value
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return True, None
        for option in options:
            if option is type(None):
                continue
            ok, converted = _fits(option, value)
            if ok:
                return True, converted
        return False, value
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_INTEGER
        return ok, value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return math.isfinite(float(value)) or math.isinf(float(value)), float(value)
    if kind is str:
        return isinstance(value, str), value
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if isinstance(value, kind):
            return True, value
        try:
            return True, kind(value)
        except ValueError:
            return False, value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(kind)
        item = args[0] if args else Any
        converted = []
        for element in value:
            ok, element = _fits(item, element)
            if not ok:
                return False, value
            converted.append(element)
        return True, tuple(converted)
    if origin is dict or kind is dict:
        return isinstance(value, dict), value
    return True, value  # other annotations (configs, demand laws) check themselves


def check_types(prefix: str, cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Checks each value against its field's annotation and converts ints to floats, lists to
    tuples and strings to enums where the field says so.

    Args:
        prefix: How the user names the fields' table, e.g. ``collect`` or ``train.iql``.
        cls: The dataclass.
        values: Field values (unknown names are left for the caller to report).

    Returns:
        The converted values.

    Raises:
        ValueError: Naming ``prefix.field``, the expected type and the value given.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    out = dict(values)
    for name, value in values.items():
        if name not in known:
            continue
        ok, converted = _fits(hints.get(name, Any), value)
        if not ok:
            raise ValueError(f"{prefix}.{name} must be {_describe(hints[name])}, got {value!r}")
        out[name] = converted
    return out


def manifest_field(path: Any, manifest: dict[str, Any], name: str, parse: Any,
                   error: type[Exception] = ValueError) -> Any:
    """``parse(manifest[name])`` for a JSON manifest read from ``path``; a missing or bad value
    raises ``error`` naming the file and the field."""
    try:
        return parse(manifest[name])
    except KeyError:
        raise error(f"{path}: {name} is missing") from None
    except (ValueError, TypeError, AttributeError, OverflowError) as problem:
        raise error(f"{path}: {name}: {problem}") from None


def settings_dict(value: Any, later: tuple[str, ...]) -> dict[str, Any]:
    """A settings dataclass as a dict, without the ``later`` fields (added after runs were made
    with the class) while they hold their defaults: the digests of finished stages and the
    headers of checkpoints written before those fields existed stay what they were."""
    out = dataclasses.asdict(value)
    for field in dataclasses.fields(value):
        if field.name in later and getattr(value, field.name) == field.default:
            del out[field.name]
    return out

