"""Launch arguments: one strict parser for the package's launch files (no ROS, no torch).

``ros2 launch`` hands every argument over as text. Each launch file declares its arguments
once, as a table of :class:`LaunchArg`, and parses all of them with :func:`parse_args` before
it builds a node. Whatever cannot be parsed is an error naming the argument, the value and
what is accepted; nothing falls back to a default. Raised inside the launch file's
``OpaqueFunction`` (where the values are known), :class:`LaunchArgumentError` ends the launch
before any node starts, exit status 1, with one line (launch prints the message of an
exception it catches; its traceback only with ``--debug``)::

    [ERROR] [launch]: Caught exception in launch (see debug for traceback): launch argument
    dry_run: 'ture' is not valid (accepted: true/false, 1/0, yes/no, on/off, any case)

Rules (the same for every argument):

* ``bool``: ``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case;
* ``int`` / ``float``: decimal numbers (floats finite), within the stated range;
* ``choice``: one of the listed words (any case; returned as listed);
* ``device``, ``policy_path``: what the nodes accept (the validators of
  :mod:`snapflow_ros.params.schema`): ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (any case); a
  checkpoint folder, a Hub id or a known ``tiny:`` name (the one table of
  :mod:`snapflow_ros.policies`);
* ``params_file``: an existing, readable YAML file with a ``/**/<node>:`` (or ``<node>:``,
  ``/ns/<node>:``, ``/**:``) key holding ``ros__parameters:``;
* surrounding spaces are ignored; an empty value means "not given" where the argument is
  optional (the params file's value is kept), and is an error otherwise; a value of only
  spaces is always an error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from snapflow_ros.params.choices import DEVICE_WORDS
from snapflow_ros.params.schema import ConfigError, device, policy_path
from snapflow_ros.policies import tiny_names

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
BOOL_WORDS = ", ".join(f"{t}/{f}" for t, f in zip(TRUE_WORDS, FALSE_WORDS, strict=True))
KINDS = (
    "bool",
    "int",
    "float",
    "str",
    "choice",
    "params_file",
    "namespace",
    "device",
    "log_level",
    "policy_path",
)
PACKAGE = "snapflow_ros"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
PARAMS_KEY = "ros__parameters"
# Seconds launch waits after forwarding SIGINT before it escalates to SIGTERM (launch's
# default: 5). The policy node ends at once after its shutdown (measured 0.09-0.22 s from
# SIGINT/SIGTERM to exit on a loaded 2-core machine, inferring; before the node skipped
# Python's exit-time clean-up of the model: 2-5 s, over 15 s seen loaded). Its shutdown waits
# at most 2 s for an inference in progress; the rest is margin for a loaded machine.
SIGINT_GRACE_S = 10.0
MAX_SHOWN = 60  # characters of a bad value quoted in a message

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NAMESPACE = re.compile(r"/?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*")


class LaunchArgumentError(ValueError):
    """A launch argument that cannot be used (the message names it, its value, what works)."""


def shown(text: str) -> str:
    """``text`` quoted for a message (long values cut)."""
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 3] + "..."
    return repr(text)


def _bad(name: str, text: str, accepted: str) -> LaunchArgumentError:
    return LaunchArgumentError(f"{name}: {shown(text)} is not valid (accepted: {accepted})")


def parse_bool(name: str, text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case, spaces around ignored)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _bad(name, text, f"{BOOL_WORDS}, any case")


def _check_range(
    name: str, text: str, value: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and value < minimum:
        raise LaunchArgumentError(f"{name}: {shown(text)} is below the minimum {minimum:g}")
    if maximum is not None and value > maximum:
        raise LaunchArgumentError(f"{name}: {shown(text)} is above the maximum {maximum:g}")


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" >= {minimum:g}"
    if maximum is not None:
        return f" <= {maximum:g}"
    return ""


def parse_int(name: str, text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A decimal integer (``3``, ``-1``, ``+2``) within ``[minimum, maximum]``."""
    word = text.strip()
    if not _INT.fullmatch(word):
        raise _bad(name, text, f"an integer{_range_text(minimum, maximum)}")
    value = int(word)
    _check_range(name, text, value, minimum, maximum)
    return value


def parse_float(
    name: str, text: str, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite decimal number (``0.5``, ``1e-3``, ``2``) within ``[minimum, maximum]``."""
    word = text.strip()
    if not _FLOAT.fullmatch(word) or not math.isfinite(float(word)):
        raise _bad(name, text, f"a finite number{_range_text(minimum, maximum)}")
    value = float(word)
    _check_range(name, text, value, minimum, maximum)
    return value


def parse_choice(name: str, text: str, choices: Iterable[str]) -> str:
    """One of ``choices`` (any case); returned as written in ``choices``."""
    options = tuple(choices)
    word = text.strip().lower()
    for option in options:
        if word == option.lower():
            return option
    raise _bad(name, text, ", ".join(options))


def parse_namespace(name: str, text: str) -> str:
    """A ROS namespace (``arm``, ``/robot/arm``, ``/``): names of letters, digits and ``_``."""
    word = text.strip()
    if word == "/" or _NAMESPACE.fullmatch(word):
        return word
    raise _bad(name, text, "a ROS namespace such as /arm or robot/arm")


def parse_device(name: str, text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (any case; the node checks the GPU exists)."""
    word = text.strip().lower()
    try:
        device(name, word)  # the node's own check
    except ConfigError:
        raise _bad(name, text, DEVICE_WORDS) from None
    return word


def parse_log_level(name: str, text: str) -> str:
    """A ROS log level (``info``), or ``<logger>:=<level>`` for one logger."""
    logger, sep, level = text.strip().rpartition(":=")
    if sep and not logger:
        raise _bad(name, text, f"{', '.join(LOG_LEVELS)} or <logger>:=<level>")
    try:
        word = parse_choice(name, level, LOG_LEVELS)
    except LaunchArgumentError:
        raise _bad(name, text, f"{', '.join(LOG_LEVELS)} or <logger>:=<level>") from None
    return f"{logger}:={word}" if sep else word


def _key_addresses(key: str, node: str) -> bool:
    """Whether a params-file key applies to a node named ``node`` (in some namespace)."""
    key = key.strip()
    if key in ("/**", "**", "/*", "*"):
        return True
    return key.rstrip("/").rpartition("/")[2] in (node, "*")


def check_params_file(name: str, path: str, node: str) -> str:
    """``path`` if it is a readable YAML params file with parameters for ``node``.

    The file must hold a mapping with a key that addresses the node (``/**/<node>``,
    ``<node>``, ``/<ns>/<node>``, ``/**``) whose value has a ``ros__parameters`` mapping;
    otherwise the node would silently start on its built-in defaults.
    """
    where = f"{name}: {path}"
    if not os.path.exists(path):
        raise LaunchArgumentError(f"{where} does not exist")
    if os.path.isdir(path):
        raise LaunchArgumentError(f"{where} is a folder, not a YAML params file")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise LaunchArgumentError(f"{where} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise LaunchArgumentError(f"{where} is not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise LaunchArgumentError(f"{where} is not valid YAML{at} ({problem})") from None
    expected = f"a `/**/{node}:` key with `{PARAMS_KEY}:`"
    if not isinstance(data, dict):
        raise LaunchArgumentError(f"{where} is not a ROS params file (expected {expected})")
    keys = [str(k) for k in data]
    matching = [k for k in keys if _key_addresses(k, node)]
    if not matching:
        raise LaunchArgumentError(
            f"{where} has no parameters for {node} (keys: {', '.join(keys) or 'none'}; "
            f"expected {expected})"
        )
    for key in matching:
        section = data[key]
        if not isinstance(section, dict) or not isinstance(section.get(PARAMS_KEY), dict):
            raise LaunchArgumentError(
                f"{where}: `{key}:` has no `{PARAMS_KEY}:` mapping (expected {expected})"
            )
    return path


@dataclass(frozen=True)
class LaunchArg:
    """One launch argument: how its text is parsed, its default and its meaning.

    ``optional``: an empty value means "not given" (:func:`parse_args` returns None for it).
    ``node``: for ``params_file``, the node whose parameters the file must hold.
    """

    name: str
    kind: str
    default: str
    description: str
    optional: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    node: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r} ({', '.join(KINDS)})")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice needs choices")
        if self.kind == "params_file" and not self.node:
            raise ValueError(f"{self.name}: a params_file needs the node name")

    def accepted(self) -> str:
        """What the argument accepts, for its description."""
        return {
            "bool": BOOL_WORDS,
            "int": f"integer{_range_text(self.minimum, self.maximum)}",
            "float": f"number{_range_text(self.minimum, self.maximum)}",
            "str": "text",
            "choice": " | ".join(self.choices),
            "params_file": f"YAML params file with `/**/{self.node}:`",
            "namespace": "ROS namespace",
            "device": "auto | cpu | cuda | cuda:N",
            "log_level": f"{' | '.join(LOG_LEVELS)}, or <logger>:=<level>",
            "policy_path": f"checkpoint folder, Hub id, or {tiny_names()}",
        }[self.kind]

    def parse(self, text: str) -> Any:
        """The value of ``text`` (None: empty and optional); LaunchArgumentError if bad."""
        if text == "" and self.optional:
            return None
        if not text.strip():
            hint = f", or nothing at all: `{self.name}:=`" if self.optional else ""
            raise LaunchArgumentError(
                f"{self.name}: {shown(text)} is empty (accepted: {self.accepted()}{hint})"
            )
        word = text.strip()
        if self.kind == "int":
            return parse_int(self.name, word, _as_int(self.minimum), _as_int(self.maximum))
        if self.kind == "float":
            return parse_float(self.name, word, self.minimum, self.maximum)
        if self.kind == "choice":
            return parse_choice(self.name, word, self.choices)
        if self.kind == "params_file":
            return check_params_file(self.name, word, self.node)
        if self.kind == "str":
            return word
        return _PARSERS[self.kind](self.name, word)


def parse_policy_path(name: str, text: str) -> str:
    """A policy path: anything but an unknown ``tiny:`` name (the node's own check)."""
    try:
        policy_path(name, text)
    except ConfigError as exc:
        raise LaunchArgumentError(str(exc)) from None
    return text


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "bool": parse_bool,
    "namespace": parse_namespace,
    "device": parse_device,
    "log_level": parse_log_level,
    "policy_path": parse_policy_path,
}


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def parse_args(arguments: Iterable[LaunchArg], values: Mapping[str, str]) -> dict[str, Any]:
    """Parse every argument of ``arguments`` from ``values`` (text by name).

    Returns name -> value (None: optional and empty). Every bad argument is reported in one
    :class:`LaunchArgumentError` (one line, the problems separated by ``;``). A missing name
    in ``values`` uses the argument's default text.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for arg in arguments:
        try:
            out[arg.name] = arg.parse(values.get(arg.name, arg.default))
        except LaunchArgumentError as exc:
            problems.append(f"launch argument {exc}")
    if problems:
        raise LaunchArgumentError("; ".join(problems))
    return out


def declared_description(arg: LaunchArg) -> str:
    """The text ``ros2 launch --show-args`` shows for ``arg``."""
    return f"{arg.description} [{arg.accepted()}]"


def node_options(
    executable: str,
    namespace: str,
    parameters: list[Any],
    ros_arguments: list[str] | None = None,
    emulate_tty: bool = False,
) -> dict[str, Any]:
    """Keyword arguments of a ``launch_ros`` node of this package: named as its executable,
    output on the screen, :data:`SIGINT_GRACE_S` to shut down after Ctrl-C."""
    options: dict[str, Any] = {
        "package": PACKAGE,
        "executable": executable,
        "name": executable,
        "namespace": namespace,
        "parameters": parameters,
        "output": "screen",
        "sigterm_timeout": str(SIGINT_GRACE_S),
    }
    if ros_arguments:
        options["ros_arguments"] = ros_arguments
    if emulate_tty:
        options["emulate_tty"] = True
    return options
