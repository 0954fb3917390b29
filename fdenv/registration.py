"""The axis registry and the Gymnasium ids it gives rise to.

Every registered axis ``Name`` (version ``v``) is the environment ``FullDuplex-Name-vv``;
``FullDuplex-Mixed-v0`` plays a random axis of the paper's four per episode.
"""

from __future__ import annotations

import re

import gymnasium as gym

from fdenv.axes import PAPER_AXES, Axis

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
    """The registered axis called ``name``; ``ValueError`` listing the known ones otherwise."""
    if isinstance(name, Axis):
        return name
    try:
        return _AXES[name]
    except KeyError:
        known = ", ".join(sorted(_AXES))
        raise ValueError(f"unknown axis {name!r}; known axes: {known} (or {MIXED!r})") from None


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
    for axis in PAPER_AXES:
        register_axis(axis)
    gym.register(
        id=env_id(MIXED),
        entry_point="fdenv.env:FullDuplexEnv",
        vector_entry_point="fdenv.vector:FullDuplexVectorEnv",
        kwargs={"axis": MIXED},
    )
