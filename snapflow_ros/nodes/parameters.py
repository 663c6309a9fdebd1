"""One parameter listener for any node: declare a table, check every value, apply what is set.

:class:`ParameterListener` is the ROS side of :mod:`snapflow_ros.params.schema`, like the
listener generate_parameter_library makes: it declares a node's :class:`ParamTable` (per-entry
parameters for every valid name listed, e.g. ``cameras.<name>.*``), checks values at start-up
and on every ``set_parameters`` (``ros2 param set``) with the table's checks, then the node's
cross-checks, and hands accepted values to the node (``apply``). A set with a bad value is
refused with a reason naming the parameter and what it accepts, and the old value stays.

rclpy answers an accepted set with a fresh ``SetParametersResult(successful=True)``, dropping
the reason of the set-parameters callback; a node whose accepted sets can apply later (the
policy node: at the next configure) derives from :class:`SetReasons` to keep it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from snapflow_ros.control import short
from snapflow_ros.params.schema import (
    NAME_PATTERN,
    ConfigError,
    EntryGroup,
    ParamSpec,
    ParamTable,
    type_name,
)

UNSET_TYPES = {  # how a parameter without a default is declared under static typing
    "string[]": Parameter.Type.STRING_ARRAY,
    "double[]": Parameter.Type.DOUBLE_ARRAY,
    "int[]": Parameter.Type.INTEGER_ARRAY,
}
Values = Callable[[str], Any]
CrossCheck = Callable[[dict[str, Any], Values], None]  # (checked set, current values)


class ParameterListener:
    """Declares ``table`` on ``node`` (at construction) and checks every set once
    :meth:`listen` is called.

    ``apply(checked)``: called with the accepted values of a set (in their type); returns why
    some do not apply yet ('' when all do). ``cross_check(checked, current)``: raises
    ValueError when the set's values do not fit each other or the node (``current(name)``:
    a parameter's current value, checked; None when it is bad itself). ``log_refused(key,
    level, message)``: a throttled log, one warning per refused parameter.
    ``first_error_only``: a set stops at its first bad value (else each is named). ``fixed``:
    parameters that are not run-time ones are refused with this reason (``{name}`` filled
    in) instead of being accepted for later.
    """

    def __init__(
        self,
        node: Node,
        table: ParamTable,
        *,
        apply: Callable[[dict[str, Any]], str] | None = None,
        cross_check: CrossCheck | None = None,
        log_refused: Callable[[str, str, str], None] | None = None,
        first_error_only: bool = False,
        fixed: str = "",
    ) -> None:
        self.node = node
        self.table = table
        self.startup_errors: list[str] = []  # what start_value found wrong, in order
        self._apply = apply
        self._cross_check = cross_check
        self._log_refused = log_refused
        self._first_error_only = first_error_only
        self._fixed = fixed
        self._accepted = threading.local()  # .reason: why an accepted set does not apply yet
        self._declare()

    # ------------------------------------------------------------------ declaring and reading
    def _declare(self) -> None:
        for spec in self.table.params:
            self._declare_one(spec.name, spec)
        for group in self.table.groups:  # entries of valid names only (configure reports the rest)
            for owner in self.entry_names(group):
                for spec, full in self.table.entry_params(group.prefix, owner):
                    self._declare_one(full, spec, owner if group.templates else "")

    def _declare_one(self, name: str, spec: ParamSpec, owner: str = "") -> None:
        default = spec.default
        if isinstance(default, str) and owner:
            default = default.replace("{name}", owner)
        if self.table.coerce:  # any type: the table checks (an int for a double, ...)
            value = None if default == [] else default
            descriptor = ParameterDescriptor(description=spec.description, dynamic_typing=True)
        else:
            value = UNSET_TYPES[type_name(spec)] if default is None else default
            descriptor = ParameterDescriptor(description=spec.description)
        self.node.declare_parameter(name, value, descriptor)

    def entry_names(self, group: EntryGroup) -> list[str]:
        """The valid, distinct names listed in ``group``'s names parameter (its default when
        it is not set)."""
        value = self.node.get_parameter(group.names_param).value
        if value is None:
            return list(self.table.spec_for(group.names_param)[0].default)
        if isinstance(value, str) or not isinstance(value, list | tuple):
            return []
        return list(
            dict.fromkeys(v for v in value if isinstance(v, str) and NAME_PATTERN.fullmatch(v))
        )

    def value(self, name: str) -> Any:
        """A parameter's value as set (None: not declared or not set)."""
        node = self.node
        return node.get_parameter(name).value if node.has_parameter(name) else None

    def start_value(self, name: str) -> Any:
        """A parameter's value checked against the table; a bad one (a wrongly typed value in
        the parameters file, say) is kept in :attr:`startup_errors` and replaced by the
        default, so the node starts and reports it instead of dying in its constructor."""
        try:
            return self.table.check(name, self.value(name))
        except ConfigError as exc:
            self.startup_errors.append(str(exc))
            return self.table.check(name, None)

    def check_all(self) -> None:
        """Check every declared value, then the cross-checks; raises the first problem."""
        for spec in self.table.params:
            self.table.check(spec.name, self.value(spec.name), self.value)
        for group in self.table.groups:
            for owner in self.entry_names(group):
                for _, full in self.table.entry_params(group.prefix, owner):
                    self.table.check(full, self.value(full), self.value)
        if self._cross_check is not None:
            self._cross_check({}, self.current)

    def current(self, name: str) -> Any:
        """A parameter's current value, checked (None when it is bad)."""
        try:
            return self.table.check(name, self.value(name), self.value)
        except (ValueError, TypeError):  # another bad value: configure reports it
            return None

    def warn_unknown_overrides(self) -> None:
        """A parameter in the parameters file that the node does not have (a typo) would be
        ignored without a word by rclpy: say so."""
        overrides = getattr(self.node, "_parameter_overrides", None) or {}
        unknown = sorted(n for n in overrides if not self.node.has_parameter(n))
        if unknown:
            self.node.get_logger().warning(
                f"ignoring parameters that {self.table.node} does not have (typos?): "
                + short(", ".join(unknown))
            )

    # ------------------------------------------------------------------ sets
    def listen(self) -> None:
        """Check every set from now on (rclpy's set-parameters callback)."""
        self.node.add_on_set_parameters_callback(self._on_set)

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        """Check every value of a set against the table (whether it applies now or later),
        then the cross-checks; refuse the set as a whole, its reason naming the bad values."""
        raw = {p.name: p.value for p in params}

        def values(name: str) -> Any:  # for related checks: the set's value, else the current
            return raw[name] if name in raw else self.value(name)

        checked: dict[str, Any] = {}
        refused: list[tuple[str, str]] = []
        for p in params:
            if self.table.spec_for(p.name) is None:
                continue  # rclpy's own (use_sim_time, qos_overrides.*)
            if self._fixed and p.name not in self.table.runtime:
                refused.append((p.name, self._fixed.format(name=p.name)))
            else:
                try:
                    checked[p.name] = self.table.check(p.name, p.value, values)
                except (ValueError, TypeError) as exc:
                    refused.append((p.name, str(exc)))
            if refused and self._first_error_only:
                break
        if not refused and checked and self._cross_check is not None:
            try:
                self._cross_check(checked, self.current)
            except ValueError as exc:
                refused.append((str(exc).partition(":")[0], str(exc)))
        if refused:
            for name, reason in refused:
                if self._log_refused is not None:
                    self._log_refused(f"refused.{name}", "warning", f"parameter refused: {reason}")
            return SetParametersResult(
                successful=False, reason="; ".join(reason for _, reason in refused)
            )
        if not checked or self._apply is None:
            return SetParametersResult(successful=True)
        reason = self._apply(checked)
        self._accepted.reason = reason
        return SetParametersResult(successful=True, reason=reason)

    def set_atomically(
        self, set_: Callable[[list[Parameter]], SetParametersResult], params: list[Parameter]
    ) -> SetParametersResult:
        """``set_(params)`` (rclpy's ``set_parameters_atomically``) with the reason of an
        accepted set that applies only later, which rclpy drops. The parameter services
        (``ros2 param set``) call it once per parameter."""
        self._accepted.reason = ""
        result = set_(params)
        if result.successful and self._accepted.reason:
            result.reason = self._accepted.reason
        self._accepted.reason = ""
        return result


class SetReasons:
    """Mixin of an rclpy node whose :class:`ParameterListener` is ``self.params``: accepted
    sets keep the reason the listener gave (why they apply only later)."""

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        """rclpy's, plus the reason of an accepted set (see
        :meth:`ParameterListener.set_atomically`)."""
        params = self.__dict__.get("params")  # None while rclpy's constructor runs
        parent = super().set_parameters_atomically  # type: ignore[misc]
        return (
            parent(parameter_list)
            if params is None
            else params.set_atomically(parent, parameter_list)
        )

    def set_parameters(self, parameter_list: list[Parameter]) -> list[SetParametersResult]:
        """rclpy's (one parameter after the other), with the reasons of
        :meth:`set_parameters_atomically`."""
        return [self.set_parameters_atomically([p]) for p in parameter_list]
