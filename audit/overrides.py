"""``--set KEY=VALUE``: the one syntax every CLI uses to override fields of a plug-in's config
(an SSL algorithm's in ``audit train``/``audit dynamics``, an attack's in ``redteam inject``).

VALUE is read as JSON (``0.9``, ``true``, ``null``, ``[16, 32, 64]``), else kept as text, then
checked against the field's type so a wrong value gets one line naming the field and what it
takes: a ``float`` field takes any number, an ``int`` field an integer, a ``bool`` field
true/false (also yes/no, on/off, 1/0), a ``str`` field the text as written (``kind=1`` is the
string ``"1"``). ``KEY`` may use dashes for underscores. The config's own ``__post_init__`` then
checks ranges.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Sequence

from audit.errors import InvalidParameterError, UnknownNameError

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_overrides(items: Sequence[str], config_cls: type, *, owner: str, command: str,
                    option: str = "--set") -> dict[str, Any]:
    """``{field: value}`` from ``KEY=VALUE`` strings for the dataclass ``config_cls``. ``owner``
    names the plug-in in messages (``"attack 'noise'"``), ``command`` the CLI command."""
    hints = typing.get_type_hints(config_cls) if dataclasses.is_dataclass(config_cls) else {}
    keys = [f.name for f in dataclasses.fields(config_cls)] if dataclasses.is_dataclass(config_cls) else []
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise InvalidParameterError(f"The '{option}' option of {command} must be KEY=VALUE. Got {item!r} instead.")
        if key not in keys:
            valid = ", ".join(keys) if keys else f"none ({owner} has no parameters)"
            raise UnknownNameError(f"Unknown parameter '{key}' of {owner}. Valid: {valid}.")
        out[key] = _typed(text, hints.get(key, Any), key, owner)
    return out


def _typed(text: str, hint: Any, key: str, owner: str) -> Any:
    kinds = _kinds(hint)
    if str in kinds and len(kinds - {type(None)}) == 1:
        return None if (type(None) in kinds and text == "null") else text  # text as written
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if value is None and (type(None) in kinds or not kinds):
        return None
    if bool in kinds:
        if isinstance(value, bool):
            return value
        if text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise InvalidParameterError(f"The '{key}' parameter of {owner} must be true or false. Got {text!r} instead.")
    if int in kinds and float in kinds:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise InvalidParameterError(f"The '{key}' parameter of {owner} must be a number. Got {text!r} instead.")
    if int in kinds:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidParameterError(f"The '{key}' parameter of {owner} must be an int. Got {text!r} instead.")
    if float in kinds:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise InvalidParameterError(f"The '{key}' parameter of {owner} must be a float. Got {text!r} instead.")
    return value  # lists, mappings, Any: the JSON value (or the text)


def _kinds(hint: Any) -> set:
    """The plain types a hint allows: ``float | None`` -> {float, NoneType}; other hints -> {}."""
    if hint in (int, float, bool, str):
        return {hint}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = typing.get_args(hint)
        return set().union(*(_kinds(p) if p is not type(None) else {type(None)} for p in parts))
    return set()
