"""Command-line flags and JSON files from config dataclasses, so that a setting is one field.

The config dataclasses (:class:`fdenv.config.EnvConfig`, ``GRPOConfig``, ``MiningConfig``, ...)
document each field with a string literal right after it. :class:`ConfigFlags` turns every field
of such a class into an ``argparse`` flag with that text and the default as help, and
:func:`load_json` / :func:`from_data` build an instance from JSON data. Both read values through
the same conversion, so a setting means the same from a flag and from a file, and a config that
:func:`fdenv.config.plain` wrote loads back equal.

How a field's type becomes a flag (``--field-name``, underscores as hyphens):

- ``int``, ``float``, ``str``, ``Path``: one value; ``Literal[...]``: one of its values;
  ``bool``: ``--x`` / ``--no-x``;
- ``tuple[T, ...]``, ``tuple[T, T]``, ``list[T]`` of those: several values (``--betas 0.9
  0.95``); a tuple of tuples: one JSON value (``'[[3, 3, 2.4], [10, 8, 3.5]]'``);
- ``dict[str, T]`` / ``Mapping[str, T]``: ``key=value`` pairs or one JSON object;
- ``X | None``: as ``X``, and the word ``none`` sets ``None``; a union with objects
  (``str | Voice``): its first member that a command line can write (``str``);
- a nested dataclass: its fields' flags, prefixed by the field's name
  (``--sampling-temp-text``), or unprefixed where the nested field is flattened
  (``GRPOConfig.env``: ``--lead-in-s``). An optional one (``judge: JudgeConfig | None``) also
  gets ``--judge`` / ``--no-judge``; giving any of its flags builds it, from its defaults, and a
  required field left out is an error naming its flag;
- anything else (an object such as a ``Voice`` or a list of scenarios) has no flag: Python
  sets it, and JSON only where the field has a member above. ``--help`` lists such fields.

A flag that is not given is absent from the parsed namespace (its default is
``argparse.SUPPRESS``), so a config builds as: dataclass defaults, then the ``--config`` file,
then the flags given.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import json
import re
import textwrap
import types
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")
FieldPath = tuple[str, ...]

NONE_WORD = "none"
"""The command-line value that sets an optional field to ``None``."""
SCALARS: tuple[type, ...] = (bool, int, float, str, Path)
_NOUNS = {
    bool: ("true or false", "booleans"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    Path: ("a path", "paths"),
}
_DEST = "config."
"""Prefix of the generated flags' dests, so they never meet a command's own arguments."""


class ConfigError(ValueError):
    """A config that cannot be built; the message names where from (a file, the command line)
    and the field."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstring of each field of ``cls`` (the string right after it in the class
    body, as documentation tools read it); a field without one is absent."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source to read (a class made in an interactive session)
        return {}
    body = ast.parse(source).body[0].body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def from_data(cls: type[T], data: Any, where: str = "config", base: T | None = None) -> T:
    """An instance of ``cls`` from JSON data: nested dataclasses from objects (missing fields
    keep ``base``'s values, else the field defaults), tuples from lists. An unknown field, a
    value of the wrong type or one that ``cls`` refuses is a :class:`ConfigError` naming
    ``where`` and the field."""
    return _Reader(where, ".".join).build(cls, data, base, ())


def load_json(cls: type[T], path: str | Path) -> T:
    """An instance of ``cls`` from a JSON file of its fields (see :func:`from_data`); a file
    that cannot be read or is not JSON is a :class:`ConfigError` naming it and the position."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object of {cls.__name__} fields")
    return from_data(cls, data, str(path))


@dataclasses.dataclass(frozen=True)
class Flag:
    """One generated flag: the field it sets (``path``, from the top config) and its help."""

    option: str
    path: FieldPath
    kind: Any
    """The field's type as the command line writes it (see :func:`expressible`)."""
    optional: bool
    doc: str
    default: Any
    toggle: bool = False
    """``--x`` / ``--no-x`` of an optional nested dataclass: build it, or set ``None``."""

    @property
    def dest(self) -> str:
        return _DEST + ".".join(self.path)


@dataclasses.dataclass
class FlagGroup:
    """The flags of one dataclass, shown together in ``--help``."""

    title: str
    description: str
    flags: list[Flag]


class ConfigFlags(Generic[T]):
    """``argparse`` flags for every field of the dataclass ``cls`` (see the module's doc).

    ``flatten``: dotted paths of nested dataclass fields whose flags go without prefix.
    ``skip``: dotted path -> why a field has no flag (for example a vocabulary size that the
    model sets); shown in ``--help``. ``names``: dotted path -> flag name, to keep a command's
    established name (``audio_format``: ``--format``).
    """

    def __init__(
        self,
        cls: type[T],
        *,
        flatten: Collection[str] = (),
        skip: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.cls = cls
        self._flatten = set(flatten)
        self._skip = dict(skip or {})
        self._names = dict(names or {})
        self.groups: list[FlagGroup] = []
        self._seen: set[str] = set()
        self._walk(cls, (), "", _defaults(cls), cls.__name__)
        self.flags = {flag.dest: flag for group in self.groups for flag in group.flags}
        unused = (set(self._skip) | set(self._names) | self._flatten) - self._seen
        if unused:
            raise ValueError(f"ConfigFlags({cls.__name__}): no fields {sorted(unused)}")

    def _walk(self, cls: type, path: FieldPath, prefix: str, defaults: Any, title: str) -> None:
        docs = field_docs(cls)
        hints = get_type_hints(cls)
        group = FlagGroup(title, _summary(cls), [])
        self.groups.append(group)
        skipped = []
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            here = (*path, field.name)
            dotted = ".".join(here)
            self._seen.add(dotted)
            kind, optional = expressible(hints[field.name])
            default = getattr(defaults, field.name)
            if dotted in self._skip or kind is None:
                skipped.append(f"{dotted} ({self._skip.get(dotted) or 'set it from Python'})")
                continue
            option = self._names.get(dotted) or "--" + (prefix + field.name).replace("_", "-")
            doc = docs.get(field.name, "")
            if not _is_dataclass_type(kind):
                group.flags.append(Flag(option, here, kind, optional, doc, default))
                continue
            if optional:
                group.flags.append(Flag(option, here, kind, optional, doc, default, toggle=True))
            nested = default if isinstance(default, kind) else _defaults(kind)
            sub_prefix = prefix if dotted in self._flatten else f"{prefix}{field.name}_"
            self._walk(kind, here, sub_prefix, nested, f"{dotted} ({kind.__name__})")
        if skipped:
            group.description += f" No flags: {'; '.join(skipped)}."

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Adds the flags to ``parser``, one argument group per dataclass."""
        for group in self.groups:
            target = parser.add_argument_group(group.title, _escape(group.description))
            for flag in group.flags:
                target.add_argument(flag.option, **_argument(flag))

    def owns(self, dest: str) -> bool:
        """Whether ``dest`` (a key of the parsed namespace) is one of these flags."""
        return dest in self.flags

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The flags given, as JSON data shaped like the config (nested objects)."""
        data: dict[str, Any] = {}
        present = [(self.flags[d], v) for d, v in vars(args).items() if d in self.flags]
        for flag, text in sorted(present, key=lambda item: len(item[0].path)):
            value = _parsed(flag, text, self.label)
            *parents, name = flag.path
            node = data
            for depth, parent in enumerate(parents, 1):
                if node.get(parent, {}) is None:  # --no-x with an --x-... flag
                    turned_off = self.label(flag.path[:depth])[2:]
                    raise ConfigError(
                        f"command line: {self.label(flag.path)} sets a field of what "
                        f"--no-{turned_off} turns off"
                    )
                node = node.setdefault(parent, {})
            node[name] = value
        return data

    def build(self, args: argparse.Namespace, base: T | None = None) -> T:
        """The config from ``base`` (default: the dataclass defaults) and the flags given."""
        return _Reader("command line", self.label).build(self.cls, self.given(args), base, ())

    def label(self, path: FieldPath) -> str:
        """How errors name a field: its flag where it has one."""
        flag = self.flags.get(_DEST + ".".join(path))
        return flag.option if flag is not None else ".".join(path)


def expressible(tp: Any) -> tuple[Any, bool]:
    """``tp`` as (the type that a command line and JSON write, whether ``None`` is allowed);
    the type is ``None`` where no member of ``tp`` can be written (objects)."""
    if get_origin(tp) in (Union, types.UnionType):
        members = get_args(tp)
        usable = [m for m in members if m is not type(None) and _writable(m)]
        return (usable[0] if usable else None), type(None) in members
    return (tp if _writable(tp) else None), False


def _writable(tp: Any) -> bool:
    origin = get_origin(tp)
    if tp in SCALARS or origin is Literal or _is_dataclass_type(tp):
        return True
    if origin in (tuple, list):
        return all(expressible(a)[0] is not None for a in get_args(tp) if a is not Ellipsis)
    if origin in (dict, Mapping):
        key, value = get_args(tp)
        return key is str and expressible(value)[0] is not None
    return False


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _items(kind: Any, count: int) -> list[Any] | None:
    """The element types of a tuple or list type holding ``count`` items; ``None`` when a
    fixed-length tuple holds another number."""
    args = get_args(kind)
    if get_origin(kind) is list or (len(args) == 2 and args[1] is Ellipsis):
        return [args[0]] * count
    return list(args) if len(args) == count else None


def describe(tp: Any, plural: bool = False) -> str:
    """What a value of type ``tp`` must be, in words (for error messages)."""
    kind, optional = expressible(tp)
    origin = get_origin(kind)
    if kind is None:
        text = f"a Python object ({getattr(tp, '__name__', tp)})"
    elif kind in _NOUNS:
        text = _NOUNS[kind][plural]
    elif origin is Literal:
        text = ("values among " if plural else "one of ") + ", ".join(
            repr(v) for v in get_args(kind)
        )
    elif _is_dataclass_type(kind):
        text = f"{kind.__name__} objects" if plural else f"an object of {kind.__name__} fields"
    elif origin in (tuple, list):
        args = [a for a in get_args(kind) if a is not Ellipsis]
        if origin is list or Ellipsis in get_args(kind):
            items = describe(args[0], plural=True)
        elif len(set(args)) == 1:
            items = f"{len(args)} {describe(args[0], plural=True)}"
        else:
            items = f"({', '.join(describe(a) for a in args)})"
        text = f"{'lists' if plural else 'a list'} of {items}"
    else:
        value = describe(get_args(kind)[1], plural=True)
        text = f"objects of {value}" if plural else f"an object of {value}"
    return f"null or {text}" if optional and not plural else text


@dataclasses.dataclass(frozen=True)
class _Reader:
    """Converts JSON data to field values; errors name ``where`` and the field by ``label``."""

    where: str
    label: Callable[[FieldPath], str]

    def fail(self, path: FieldPath, tp: Any, value: Any) -> ConfigError:
        shown = f"the string {value!r}" if isinstance(value, str) else json.dumps(value)
        return ConfigError(f"{self.where}: {self.label(path)} must be {describe(tp)}, got {shown}")

    def build(self, cls: type[T], data: Any, base: T | None, path: FieldPath) -> T:
        if not isinstance(data, Mapping):
            raise self.fail(path, cls, data)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [key for key in data if key not in fields]
        if unknown:
            raise ConfigError(
                f"{self.where}: unknown field {self.label((*path, unknown[0]))}; "
                f"{cls.__name__} has {', '.join(fields)}"
            )
        hints = get_type_hints(cls)
        values = {}
        for name, value in data.items():
            inner = getattr(base, name) if base is not None else _default(fields[name])
            values[name] = self.convert(hints[name], value, (*path, name), inner)
        if base is None:
            for name, field in fields.items():
                if name not in values and _default(field) is dataclasses.MISSING:
                    raise ConfigError(
                        f"{self.where}: {self.label((*path, name))} is required "
                        f"({describe(hints[name])})"
                    )
        try:
            return cls(**values) if base is None else dataclasses.replace(base, **values)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{self.where}: {err}") from None

    def convert(self, tp: Any, value: Any, path: FieldPath, base: Any = None) -> Any:
        kind, optional = expressible(tp)
        if value is None and optional:
            return None
        if kind is None:
            raise ConfigError(
                f"{self.where}: {self.label(path)} holds a Python object "
                f"({getattr(tp, '__name__', tp)}); set it from Python"
            )
        origin = get_origin(kind)
        if _is_dataclass_type(kind):
            return self.build(kind, value, base if isinstance(base, kind) else None, path)
        if origin in (tuple, list):
            items = _items(kind, len(value)) if isinstance(value, list | tuple) else None
            if items is None:
                raise self.fail(path, tp, value)
            try:
                converted = [self.convert(t, v, path) for t, v in zip(items, value, strict=True)]
            except ConfigError:
                raise self.fail(path, tp, value) from None
            return tuple(converted) if origin is tuple else converted
        if origin in (dict, Mapping):
            if not isinstance(value, Mapping):
                raise self.fail(path, tp, value)
            try:
                return {str(k): self.convert(get_args(kind)[1], v, path) for k, v in value.items()}
            except ConfigError:
                raise self.fail(path, tp, value) from None
        if origin is Literal:
            if value not in get_args(kind) or isinstance(value, bool):
                raise self.fail(path, tp, value)
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is Path and isinstance(value, str | Path):
            return Path(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, tp, value)
        return value


def _parsed(flag: Flag, given: Any, label: Callable[[FieldPath], str]) -> Any:
    """A flag's command-line text as JSON data (the conversion to the field's type follows)."""
    if flag.toggle:
        return {} if given else None
    if flag.optional and given in (NONE_WORD, [NONE_WORD]):
        return None
    kind = flag.kind
    origin = get_origin(kind)
    try:
        if kind is bool:
            return given
        if origin in (dict, Mapping):
            if len(given) == 1 and given[0].lstrip().startswith("{"):
                return json.loads(given[0])
            pairs = [text.partition("=") for text in given]
            if not all(key and sep for key, sep, _ in pairs):
                raise ValueError("takes key=value pairs or one JSON object")
            return {key: _scalar(get_args(kind)[1], value) for key, sep, value in pairs}
        if origin in (tuple, list):
            if not isinstance(given, list):  # a tuple of tuples: one JSON value
                return json.loads(given)
            items = _items(kind, len(given)) or [get_args(kind)[0]] * len(given)
            return [_scalar(t, text) for t, text in zip(items, given, strict=True)]
        return _scalar(kind, given)
    except ValueError as err:  # json.JSONDecodeError among them
        raise ConfigError(f"command line: {label(flag.path)}: {err}") from None


def _scalar(tp: Any, text: str) -> Any:
    """One command-line word as JSON data of type ``tp``."""
    kind, _ = expressible(tp)
    if kind is int:
        return _number(int, text, "an integer")
    if kind is float:
        return _number(float, text, "a number")
    if get_origin(kind) is Literal:
        return next((v for v in get_args(kind) if str(v) == text), text)
    return text


def _number(parse: Callable[[str], Any], text: str, what: str) -> Any:
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"must be {what}, got {text!r}") from None


def _argument(flag: Flag) -> dict[str, Any]:
    """``add_argument`` keywords of a flag: strings collected, converted by :func:`_parsed`."""
    help_text = _escape(_plain(flag.doc))
    if flag.toggle:
        help_text = (
            f"{help_text} --{flag.option[2:]}: on (its defaults, or give its flags); "
            f"--no-{flag.option[2:]}: none (default: {'on' if flag.default else 'none'})"
        )
        return {"action": argparse.BooleanOptionalAction, "help": help_text.strip()} | _dest(flag)
    required = flag.default is dataclasses.MISSING
    shown = "(required)" if required else f"(default: {_shown(flag.default)})"
    keywords: dict[str, Any] = {"help": f"{help_text} {shown}".strip()} | _dest(flag)
    kind = flag.kind
    origin = get_origin(kind)
    if kind is bool:
        return keywords | {"action": argparse.BooleanOptionalAction}
    if origin in (dict, Mapping):
        return keywords | {"nargs": "+", "metavar": "KEY=VALUE"}
    if origin in (tuple, list):
        args = [a for a in get_args(kind) if a is not Ellipsis]
        if any(get_origin(expressible(a)[0]) in (tuple, list) for a in args):
            return keywords | {"metavar": "JSON"}
        fixed = origin is tuple and Ellipsis not in get_args(kind) and not flag.optional
        metavars = tuple(_metavar(a) for a in args)
        if fixed:
            return keywords | {"nargs": len(args), "metavar": metavars}
        return keywords | {"nargs": "+", "metavar": metavars[0]}
    return keywords | {"metavar": _metavar(kind)}


def _dest(flag: Flag) -> dict[str, Any]:
    return {"dest": flag.dest, "default": argparse.SUPPRESS}


def _metavar(tp: Any) -> str:
    kind, _ = expressible(tp)
    if get_origin(kind) is Literal:
        return "{" + ",".join(str(v) for v in get_args(kind)) + "}"
    return getattr(kind, "__name__", "VALUE").upper()


def _shown(value: Any) -> str:
    """A default as a command line writes it."""
    if value is None:
        return NONE_WORD
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        if any(isinstance(v, list | tuple) for v in value):
            return json.dumps(value)
        return " ".join(_shown(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    return str(value)


def _plain(doc: str) -> str:
    """A docstring as one line of help: no reST roles or literal quotes."""
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return " ".join(doc.replace("``", "").split())


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def _summary(cls: type) -> str:
    """The first paragraph of a class's docstring, as one line."""
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses writes without a doc
        return ""
    return _plain(doc.split("\n\n")[0])


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _defaults(cls: type) -> Any:
    """An object whose attributes are the fields' defaults (missing for required fields)."""
    return types.SimpleNamespace(**{f.name: _default(f) for f in dataclasses.fields(cls) if f.init})


def settings_table(cls: type, defaults: Any = None, prefix: str = "") -> str:
    """A markdown table of ``cls``'s settings: name, default and doc; a nested dataclass is
    expanded into ``outer.inner`` rows with the outer default's values. The guides embed it, and
    a test keeps the embedded copy equal to this, so the docs follow the dataclass."""
    rows = ["| setting | default | what it does |", "|---|---|---|"] if not prefix else []
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        name = f"{prefix}{field.name}"
        default = _default(field) if defaults is None else getattr(defaults, field.name)
        nested = dataclasses.is_dataclass(default) and not isinstance(default, type)
        if default is dataclasses.MISSING:
            shown = "(required)"
        elif nested:
            shown = "the rows below"
        else:
            shown = f"`{_shown(default)}`"
        rows.append(f"| `{name}` | {shown} | {_plain(docs.get(field.name, ''))} |")
        if nested:
            rows.append(settings_table(type(default), default, f"{name}."))
    return "\n".join(rows)
