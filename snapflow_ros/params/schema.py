"""The parameter schema: validators, type coercion, tables and the typed configuration they make.

A node's parameters are one :class:`ParamTable` of :class:`ParamSpec` (name, default, meaning,
checks), like a generate_parameter_library YAML file: the ROS side declares the table
(:class:`snapflow_ros.nodes.parameters.ParameterListener`), checks every value against it
whenever one is set (start-up, ``ros2 param set``, configure; the same checks each time) and
builds a typed, nested configuration from it (``cfg.blend.mode``). Parameters repeated per name
(``cameras.<name>.topic`` for every name in ``cameras.names``) are an :class:`EntryGroup`; the
configuration lists their entries in the group's section (``cfg.cameras[0].topic``).

Every error is a :class:`ConfigError` whose message names the parameter and what it accepts.
Importing this module loads nothing of the package and no ROS: topic names are checked with
rclpy's own validator and policy paths by :mod:`snapflow_ros.policies`, both imported when first
used.
"""

from __future__ import annotations

import array
import functools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from snapflow_ros.params.choices import DEVICE_PATTERN, DEVICE_WORDS

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # names of repeated entries (cameras, ...)
SHOWN_CHARS = 60  # longest value quoted in a message


class ConfigError(ValueError):
    """A parameter value a node cannot work with (says which and why)."""


Check = Callable[[str, Any], None]  # (name, value): raises ConfigError naming the parameter
Values = Callable[[str], Any]  # parameter name -> value
RelatedCheck = Callable[[str, Any, Values], None]  # a check that reads other parameters too


def shown(value: Any) -> str:
    """A value for an error message (long ones cut: messages stay short whatever the input)."""
    text_ = repr(value)
    return text_ if len(text_) <= SHOWN_CHARS else text_[: SHOWN_CHARS - 3] + "..."


# ---------------------------------------------------------------------------------------------
# validators: each returns a check, run on a value already in the parameter's type
def one_of(*choices: str) -> Check:
    """The value must be one of ``choices`` (``<name>: must be one of a, b; got 'c'``)."""

    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {shown(value)}")

    return check


def requires(
    test: Callable[[Any], bool], what: str, show: Callable[[Any], str] | None = str
) -> Check:
    """``test(value)`` must hold: ``<name>: must be <what>, got <value>`` (the value written
    with ``show``; None: not written). The LIBERO bridge's checks are worded this way."""

    def check(name: str, value: Any) -> None:
        if not test(value):
            got = f", got {show(value)}" if show is not None else ""
            raise ConfigError(f"{name}: must be {what}{got}")

    return check


def choice(*choices: str) -> Check:
    """:func:`one_of` in the words of :func:`requires` (``must be one of a, b, got 'c'``)."""
    return requires(lambda value: value in choices, f"one of {', '.join(choices)}", repr)


def bounded(
    low: float | None = None, high: float | None = None, *, low_open: bool = False, unit: str = ""
) -> Check:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``); None: no bound."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    text_ = " and ".join(parts) + (f" {unit}" if unit else "")

    def check(name: str, value: Any) -> None:
        bad = not math.isfinite(value)
        bad = bad or (low is not None and (value <= low if low_open else value < low))
        bad = bad or (high is not None and value > high)
        if bad:
            raise ConfigError(f"{name}: must be {text_}; got {shown(value)}")

    return check


def names(*, identifiers: bool = False, min_items: int = 0) -> Check:
    """A list of distinct non-empty strings (``identifiers``: letters, digits, ``_``)."""

    def check(name: str, value: Any) -> None:
        if len(value) < min_items:
            raise ConfigError(f"{name}: at least {min_items} name(s) needed; got {shown(value)}")
        for item in value:
            if not item or item != item.strip():
                raise ConfigError(f"{name}: names must be non-empty, without spaces at the ends")
            if identifiers and not NAME_PATTERN.fullmatch(item):
                raise ConfigError(
                    f"{name}: {shown(item)} must start with a letter and contain only "
                    "letters, digits and _"
                )
        if len(set(value)) != len(value):
            dups = sorted({v for v in value if value.count(v) > 1})
            raise ConfigError(f"{name}: duplicate names {dups}")

    return check


def topic(*, allow_empty: bool = False, node: str = "node") -> Check:
    """A valid ROS topic name (relative, absolute or ``~/private``), checked as rcl does
    (``~`` expands to ``node``'s name)."""

    def check(name: str, value: Any) -> None:
        if not value:
            if allow_empty:
                return
            raise ConfigError(f"{name}: a topic name is needed; got ''")
        from rclpy.expand_topic_name import expand_topic_name
        from rclpy.validate_full_topic_name import validate_full_topic_name

        try:
            validate_full_topic_name(expand_topic_name(value, node, "/"))
        except Exception as exc:  # rclpy raises several types; all mean "invalid"
            why = str(exc).splitlines()[0].split(", at /")[0]
            raise ConfigError(f"{name}: {shown(value)} is not a valid topic name ({why})") from exc

    return check


def text(max_chars: int) -> Check:
    """A string of at most ``max_chars`` characters."""

    def check(name: str, value: Any) -> None:
        if len(value) > max_chars:
            raise ConfigError(f"{name}: {len(value)} characters, at most {max_chars} are accepted")

    return check


def not_empty(name: str, value: Any) -> None:
    """A non-empty string."""
    if not value.strip():
        raise ConfigError(f"{name}: must not be empty")


def policy_path(name: str, value: Any) -> None:
    """A checkpoint folder, a Hub id or a known ``tiny:`` / ``libero:`` name
    (:func:`snapflow_ros.policies.check_policy_path`); '' = not set yet: a shipped config may
    leave it to the command line, and configure then fails with a clear message."""
    from snapflow_ros.policies import check_policy_path

    if value != value.strip():
        raise ConfigError(f"{name}: {shown(value)} has spaces at the ends")
    try:
        check_policy_path(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def device(name: str, value: Any) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:data:`~.choices.DEVICE_PATTERN`)."""
    if not DEVICE_PATTERN.fullmatch(value):
        raise ConfigError(f"{name}: must be {DEVICE_WORDS}; got {shown(value)}")


# ---------------------------------------------------------------------------------------------
# one parameter, its type and coercion
TYPES: dict[str, Any] = {  # parameter type -> Python type of its value
    "bool": bool,
    "int": int,
    "double": float,
    "string": str,
    "string[]": list[str],
    "double[]": list[float],
    "int[]": list[int],
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, meaning and checks.

    Its type is ``kind`` (a key of :data:`TYPES`), or that of ``default`` when ``kind`` is ''
    (an empty or unset default needs ``kind``). ``runtime``: may change while the node runs.
    ``startup``: read once, when the process starts. ``checks`` run on every value; a
    ``related`` check also gets the other parameters' values (the set's, else the current).
    """

    name: str
    default: Any
    description: str
    runtime: bool = False
    checks: tuple[Check, ...] = ()
    kind: str = ""
    startup: bool = False
    related: RelatedCheck | None = None

    def __post_init__(self) -> None:
        type_name(self)  # a type can be told, or the table is wrong


def type_name(spec: ParamSpec) -> str:
    """The type of a parameter: ``bool``, ``int``, ``double``, ``string`` or a list of one."""
    if spec.kind:
        if spec.kind not in TYPES:
            raise ValueError(f"{spec.name}: unknown kind {spec.kind!r} ({', '.join(TYPES)})")
        return spec.kind
    value = spec.default
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and value:
        return "string[]" if isinstance(value[0], str) else "double[]"
    raise ValueError(f"{spec.name}: the default {value!r} does not tell the type: give a kind")


def _as_bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ConfigError(f"{name}: expected true or false; got {shown(v)}")


def _as_int(name: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise ConfigError(f"{name}: expected an integer; got {shown(v)}")


def _as_float(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name}: expected a number; got {shown(v)}")
    if math.isnan(float(v)):
        raise ConfigError(f"{name}: expected a number; got NaN")
    return float(v)


def _as_str(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{name}: expected a string; got {shown(v)}")
    return v


ITEM_TYPES = {"string[]": _as_str, "double[]": _as_float, "int[]": _as_int}
SCALAR_TYPES = {"bool": _as_bool, "int": _as_int, "double": _as_float, "string": _as_str}


def default_of(spec: ParamSpec) -> Any:
    """The default value of ``spec`` (a fresh list for a list)."""
    return list(spec.default) if isinstance(spec.default, list) else spec.default


def coerce(name: str, spec: ParamSpec, value: Any) -> Any:
    """``value`` in the type of ``spec`` (None, i.e. not set: the default); ConfigError if it
    cannot be (a number for a string, a word for a number, ...). An integer is accepted for a
    double, an integral double for an integer, ``true`` / ``false`` in any case for a bool."""
    if value is None:
        return default_of(spec)
    kind = type_name(spec)
    if kind in SCALAR_TYPES:
        return SCALAR_TYPES[kind](name, value)
    if isinstance(value, str) or not isinstance(value, list | tuple | array.array):
        raise ConfigError(f"{name}: expected a list ({kind}); got {shown(value)}")
    item = ITEM_TYPES[kind]
    return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]


# ---------------------------------------------------------------------------------------------
# a node's table
class Entries:
    """A section of a configuration whose parameters repeat per name: it is also the list of
    those entries (``for cam in cfg.cameras``, ``cfg.cameras[0].topic``)."""

    entries: list[Any]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Any:
        return self.entries[index]


@dataclass(frozen=True)
class EntryGroup:
    """Parameters repeated for every name listed in another parameter: ``<prefix>.<name>.<p>``
    for each name of ``names_param`` and each ``p`` of ``params``.

    ``templates``: ``{name}`` in a string value stands for the entry's name. ``base``: a class
    the entries derive from (methods over their fields).
    """

    prefix: str
    names_param: str
    params: tuple[ParamSpec, ...]
    templates: bool = False
    base: type | None = None


def attribute(name: str) -> str:
    """A dotted parameter name as one attribute name (``task.text`` -> ``task_text``)."""
    return name.replace(".", "_")


def lookup(config: Any, name: str) -> Any:
    """The value of parameter ``name`` in a configuration made by :meth:`ParamTable.config`."""
    return functools.reduce(getattr, name.split("."), config)


def record_type(
    class_name: str,
    specs: Sequence[ParamSpec],
    *,
    bases: tuple[type, ...] = (),
    frozen: bool = True,
    doc: str = "",
) -> type:
    """A dataclass with one field per parameter of ``specs`` (:func:`attribute` names, the
    parameters' types and defaults): a record built from the table, not beside it."""
    fields = [
        (
            attribute(s.name),
            TYPES[type_name(s)],
            field(default_factory=functools.partial(default_of, s))
            if isinstance(s.default, list)
            else field(default=s.default),
        )
        for s in specs
    ]
    cls = make_dataclass(class_name, fields, bases=bases, frozen=frozen)
    cls.__doc__ = doc or cls.__doc__
    return cls


class ParamTable:
    """A node's parameters: look-up, checks and the typed configuration they make.

    ``coerce``: values are converted to the parameter's type first (a node that declares its
    parameters with dynamic typing and checks types itself); otherwise they arrive typed by
    rclpy and an unset one (None) is not checked.
    """

    def __init__(
        self,
        node: str,
        params: Sequence[ParamSpec],
        groups: Sequence[EntryGroup] = (),
        *,
        coerce: bool = True,
        config_name: str = "Config",
    ) -> None:
        self.node = node
        self.params = tuple(params)
        self.groups = tuple(groups)
        self.coerce = coerce
        self.config_name = config_name
        self._top = {p.name: p for p in self.params}
        self._groups = {g.prefix: g for g in self.groups}
        self._entry_specs = {g.prefix: {p.name: p for p in g.params} for g in self.groups}
        declared = [p.name for p in self.params]
        declared += [f"{g.prefix}.<name>.{p.name}" for g in self.groups for p in g.params]
        twice = sorted({n for n in declared if declared.count(n) > 1})
        if twice:
            raise ValueError(f"{node}: parameters declared twice: {twice}")
        for g in self.groups:
            if g.names_param not in self._top:
                raise ValueError(f"{node}: group {g.prefix} needs the parameter {g.names_param}")
        self.runtime = frozenset(p.name for p in self.params if p.runtime)
        self._types: dict[str, type] | None = None

    def spec_for(self, name: str) -> tuple[ParamSpec, str] | None:
        """``(spec, owner)`` of a full parameter name (owner: the entry's name, or ''); None
        for names that are not this node's (e.g. rclpy's ``use_sim_time``)."""
        if name in self._top:
            return self._top[name], ""
        group, _, rest = name.partition(".")
        owner, _, short = rest.rpartition(".")
        specs = self._entry_specs.get(group)
        if specs is None or not owner or short not in specs:
            return None
        return specs[short], owner

    def check(self, name: str, value: Any, values: Values | None = None) -> Any:
        """The value of parameter ``name`` after every check of the table (in its type when
        the table coerces). ``values`` gives other parameters' values to a related check.

        Raises :class:`ConfigError` naming the parameter and what it accepts, also for a name
        that is not a parameter of the node. Templates (``{name}`` in an entry's string) are
        checked with the entry's name filled in.
        """
        found = self.spec_for(name)
        if found is None:
            raise ConfigError(f"{name}: not a parameter of {self.node}")
        spec, owner = found
        if self.coerce:
            value = coerce(name, spec, value)
        elif value is None:
            return None  # not set (a list declared without a value)
        filled = value.replace("{name}", owner) if owner and isinstance(value, str) else value
        for check in spec.checks:
            check(name, filled)
        if spec.related is not None and values is not None:
            spec.related(name, filled, values)
        return value

    def entry_params(self, prefix: str, owner: str) -> list[tuple[ParamSpec, str]]:
        """``(spec, full name)`` of each parameter of entry ``owner`` of group ``prefix``."""
        return [(p, f"{prefix}.{owner}.{p.name}") for p in self._groups[prefix].params]

    def values(self, get: Values) -> dict[str, Any]:
        """Every top-level parameter read through ``get`` and checked, in table order."""
        return {spec.name: self.check(spec.name, get(spec.name)) for spec in self.params}

    def entry(self, prefix: str, owner: str, get: Values) -> Any:
        """Entry ``owner`` of group ``prefix``: its parameters read through ``get`` and
        checked (templates filled in when the group has them)."""
        group = self._groups[prefix]
        raw = {
            spec.name: self.check(full, get(full))
            for spec, full in self.entry_params(prefix, owner)
        }
        if group.templates:
            raw = {
                k: v.replace("{name}", owner) if isinstance(v, str) else v for k, v in raw.items()
            }
        return self._classes()[f"{prefix}.<entry>"](name=owner, **raw)

    def config(self, values: dict[str, Any], entries: dict[str, list[Any]]) -> Any:
        """The typed, nested configuration of checked ``values`` (as :meth:`values` returns
        them) and each group's ``entries`` (as :meth:`entry` makes them)."""
        classes = self._classes()

        def section(path: str, tree: dict[str, Any]) -> Any:
            kwargs = {}
            for key, item in tree.items():
                full = f"{path}.{key}" if path else key
                kwargs[key] = values[full] if isinstance(item, ParamSpec) else section(full, item)
            if path in self._groups:
                kwargs["entries"] = list(entries.get(path, []))
            return classes[path](**kwargs)

        return section("", self._tree())

    def build(self, get: Values) -> Any:
        """Read and check every parameter through ``get`` (entries for each listed name) and
        return the typed configuration; the node's cross-checks are its own."""
        values = self.values(get)
        entries = {
            g.prefix: [self.entry(g.prefix, owner, get) for owner in values[g.names_param]]
            for g in self.groups
        }
        return self.config(values, entries)

    # ------------------------------------------------------------------ configuration types
    def _tree(self) -> dict[str, Any]:
        """Parameter names as a tree of sections (dicts) and parameters (specs)."""
        tree: dict[str, Any] = {}
        for spec in self.params:
            *path, leaf = spec.name.split(".")
            node = tree
            for part in path:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(
                        f"{self.node}: {part} is a parameter and a section: no nested configuration"
                    )
            if leaf in node:
                raise ValueError(f"{self.node}: {spec.name} is a parameter and a section")
            node[leaf] = spec
        return tree

    def _classes(self) -> dict[str, type]:
        """One dataclass per section ('' the root) and per group's entries, made once."""
        if self._types is not None:
            return self._types
        types: dict[str, type] = {}

        def make(path: str, tree: dict[str, Any]) -> type:
            fields: list[tuple[str, Any]] = []
            for key, item in tree.items():
                full = f"{path}.{key}" if path else key
                kind = TYPES[type_name(item)] if isinstance(item, ParamSpec) else make(full, item)
                fields.append((key, kind))
            bases: tuple[type, ...] = ()
            if path in self._groups:
                fields.append(("entries", list))
                bases = (Entries,)
            name = self.config_name + "".join(part.title() for part in path.split("."))
            types[path] = make_dataclass(name, fields, bases=bases)
            return types[path]

        make("", self._tree())
        for g in self.groups:
            fields = [("name", str), *((p.name, TYPES[type_name(p)]) for p in g.params)]
            bases = (g.base,) if g.base is not None else ()
            entry_name = self.config_name + g.prefix.title() + "Entry"
            types[f"{g.prefix}.<entry>"] = make_dataclass(entry_name, fields, bases=bases)
        self._types = types
        return types
