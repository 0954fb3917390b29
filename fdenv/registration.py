"""The axis registry and the Gymnasium ids it gives rise to.

Every registered axis ``Name`` (version ``v``) is the environment ``FullDuplex-Name-vv``;
``FullDuplex-Mixed-v0`` plays a random axis of the paper's four per episode.
"""

from __future__ import annotations

import ast
import dataclasses
import re

import gymnasium as gym

from fdenv.axes import CLOSED_LOOP_AXES, PAPER_AXES, Axis

MIXED = "Mixed"
"""Pseudo-axis: sample one of the paper's axes per episode."""

_AXES: dict[str, Axis] = {}
_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def env_id(name: str, version: int = 0) -> str:
    return f"FullDuplex-{name}-v{version}"


def register_axis(axis: Axis | type[Axis], *, version: int | None = None) -> str:
    """Adds an axis (instance or class with default settings) and registers its env id.

    Returns the id, ``FullDuplex-<axis.name>-v<version>``; ``version`` defaults to the axis'
    ``version``. Re-registering a name replaces the axis, so a notebook can iterate on one.
    """
    instance = axis() if isinstance(axis, type) else axis
    name = instance.name
    if not _NAME.match(name) or name == MIXED:
        raise ValueError(f"axis name {name!r} must be CamelCase letters/digits and not {MIXED!r}")
    version = instance.version if version is None else version
    _AXES[name] = instance
    new_id = env_id(name, version)
    gym.register(
        id=new_id,
        entry_point="fdenv.env:FullDuplexEnv",
        vector_entry_point="fdenv.vector:FullDuplexVectorEnv",
        kwargs={"axis": name},
        disable_env_checker=False,
    )
    return new_id


def unregister_axis(name: str) -> None:
    """Removes an axis and its env ids (for throwaway axes in tests and notebooks)."""
    get_axis(name)
    del _AXES[name]
    for registered in [i for i in gym.registry if i.startswith(f"FullDuplex-{name}-v")]:
        del gym.registry[registered]


def get_axis(name: str | Axis) -> Axis:
    """The registered axis called ``name``; ``ValueError`` listing the known ones otherwise.

    A name may carry settings, ``"PauseHandling(rule=span)"`` or ``"Backchannel(
    max_backchannel_words=2)"``: the registered axis with those fields replaced, so command
    lines and JSON configs can name an axis object. Values are Python literals (numbers,
    strings, tuples, ``None``), read with ``ast.literal_eval`` (never run), or bare words.
    """
    if isinstance(name, Axis):
        return name
    found = _SETTINGS.match(name)
    base, settings = (found[1], found[2]) if found else (name, None)
    try:
        axis = _AXES[base]
    except KeyError:
        known = ", ".join(sorted(_AXES))
        raise ValueError(f"unknown axis {name!r}; known axes: {known} (or {MIXED!r})") from None
    if settings is None:
        return axis
    return _with_settings(axis, name, settings)


_SETTINGS = re.compile(r"^([A-Za-z0-9]+)\((.*)\)$", re.S)


def _top_level_items(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: ``"a=(1, 2), b=3"`` -> two items."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [item.strip() for item in [*items, current] if item.strip()]


def _with_settings(axis: Axis, name: str, settings: str) -> Axis:
    """``axis`` with the fields ``key=value, ...`` of ``settings`` replaced; a dotted key
    (``user.answer_gap_s``) replaces a field of a dataclass setting."""
    changes: dict[str, dict[str, object]] = {}
    for item in _top_level_items(settings):
        key, sep, text = (part.strip() for part in item.partition("="))
        outer, _, inner = key.partition(".")
        target = getattr(axis, outer, None) if inner else axis
        fields = _fields(target)
        if not sep or (inner or outer) not in fields or (inner and outer not in _fields(axis)):
            raise ValueError(
                f"axis {name!r}: {item!r} is not a setting of {axis.name}; "
                f"its settings: {', '.join(sorted(_fields(axis)))}"
            )
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: a string setting such as rule=span
        changes.setdefault(outer if inner else "", {})[inner or outer] = value
    top = changes.pop("", {})
    nested = {key: dataclasses.replace(getattr(axis, key), **v) for key, v in changes.items()}
    return dataclasses.replace(axis, **top, **nested)


def _fields(value: object) -> set[str]:
    if not dataclasses.is_dataclass(value):
        return set()
    return {f.name for f in dataclasses.fields(value)}


def registered_axes() -> list[str]:
    return list(_AXES)


def expand_axes(axis: str | Axis | list[str | Axis]) -> list[Axis]:
    """Resolves an env's ``axis`` argument: a name, ``"Mixed"``, an Axis or a list of them."""
    if axis == MIXED:
        return [get_axis(a.name) for a in PAPER_AXES]
    if isinstance(axis, (list, tuple)):
        if not axis:
            raise ValueError("axis list is empty")
        return [get_axis(a) for a in axis]
    return [get_axis(axis)]


def register_defaults() -> None:
    for axis in (*PAPER_AXES, *CLOSED_LOOP_AXES):
        register_axis(axis)
    gym.register(
        id=env_id(MIXED),
        entry_point="fdenv.env:FullDuplexEnv",
        vector_entry_point="fdenv.vector:FullDuplexVectorEnv",
        kwargs={"axis": MIXED},
    )
