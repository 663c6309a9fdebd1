"""Shared fixtures (tiny offline SmolVLA / pi0.5 checkpoints, built once per test session) and
the test tiers.

Markers (registered in setup.cfg, strict): ``ros`` and ``libero`` are applied here from what a
test uses, the others by hand where they apply. What a test uses: the names its function and
its fixtures reference, followed through the functions and classes of this test package they
reach (helpers, harness), without running anything.

* ``ros``: reaches ``rclpy`` (the module or anything from it), the process harness'
  ``Harness``, ``NodeProcess``, ``ros_env`` or ``domain_id`` (``test/nodes/harness.py``), or a
  module's ``DOMAIN``: it starts ROS 2 processes or joins DDS. Message classes alone
  (``sensor_msgs.msg.Image``) are not ROS processes.
* ``libero``: lives in ``test/sim`` or ``test/eval``, or it (or any global of its module:
  such modules start the simulator by executable name too) reaches the simulator layers
  (``snapflow_ros.sim``, ``snapflow_ros.eval.libero_eval``, ``snapflow_ros.bench.libero_sim``,
  ``libero``, ``robosuite``, ``mujoco``).

Per-test timeouts (pytest-timeout, ``timeout`` in setup.cfg): a test that hangs fails with its
name instead of blocking the run. Tests marked ``libero`` or ``slow`` get more time
(:data:`MARKER_TIMEOUTS`); a ``timeout`` marker on a test wins, and ``--timeout=0`` turns all
of it off. The method is ``signal``: SIGALRM interrupts the test in the main thread, so only
that test fails and the session goes on with its teardown (the ``thread`` method ends the
whole run). A signal cannot interrupt the main thread while it is stuck inside C code (a DDS
call that never returns): :data:`HARD_EXIT_AFTER` seconds after the timeout a backstop thread
dumps every stack and ends the run, naming the test (ini ``timeout_hard_exit_after``).

Failures off the test's thread (an in-process node's callback, a harness feed thread,
``test/nodes/harness.py``) fail the test during which they happened: checked after the setup,
the call and the teardown of every test.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import CodeType, FunctionType, ModuleType

import pytest

from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint

TEST_ROOT = Path(__file__).resolve().parent
TEST_PACKAGE = "test"
HARNESS_MODULE = "test.nodes.harness"
HARNESS_ROS_NAMES = frozenset({"Harness", "NodeProcess", "ros_env", "domain_id"})
LIBERO_DIRS = ("sim", "eval")
LIBERO_MODULES = (
    "snapflow_ros.sim",
    "snapflow_ros.eval.libero_eval",
    "snapflow_ros.bench.libero_sim",
    "libero",
    "robosuite",
    "mujoco",
)
MARKER_TIMEOUTS = {"libero": 900.0, "slow": 1200.0}
"""Per-test timeouts (s) of the markers that need more than setup.cfg's ``timeout`` (600 s);
the largest that applies wins. Measured on the loaded 2-core machine (load 4-8): the slowest
tests take 86 s (libero_proof eval stage, slow), 72 s (soak, slow), 50 s (a libero_eval run);
these leave room for the tests' own subprocess timeouts (600 s libero_eval, 900 s the slow
proof and GPU-plan runs), which fail with a more specific message."""
HARD_EXIT_AFTER = 120.0
"""Default of the ini option ``timeout_hard_exit_after`` (s after a test's timeout)."""


def _origin(value: object) -> str:
    """The module ``value`` comes from ('' when unknown)."""
    if isinstance(value, ModuleType):
        return value.__name__
    origin = getattr(value, "__module__", None)
    return origin if isinstance(origin, str) else ""


def _within(origin: str, roots: tuple[str, ...]) -> bool:
    return any(origin == root or origin.startswith(root + ".") for root in roots)


def _code_names(code: CodeType) -> Iterator[str]:
    """Global and attribute names a code object uses, nested functions included."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_names(const)


def _functions(value: object) -> list[FunctionType]:
    """The Python functions behind a function, method, property or class of the test package."""
    value = inspect.unwrap(value) if callable(value) else value
    if isinstance(value, FunctionType):
        return [value]
    if isinstance(value, type):
        found = []
        for attr in vars(value).values():
            attr = getattr(attr, "fget", None) or getattr(attr, "__func__", attr)
            if isinstance(attr, FunctionType):
                found.append(attr)
        return found
    return []


def reached(roots: list[object]) -> Iterator[tuple[str, object]]:
    """(name, value) of every global the ``roots`` reference, followed through the functions
    and classes of the test package."""
    queue = [f for root in roots for f in _functions(root)]
    seen: set[int] = set()
    while queue:
        func = queue.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        for name in _code_names(func.__code__):
            if name not in func.__globals__:
                continue
            value = func.__globals__[name]
            yield name, value
            if _within(_origin(value), (TEST_PACKAGE,)):
                queue.extend(_functions(value))


def _is_ros(name: str, value: object) -> bool:
    origin = _origin(value)
    if _within(origin, ("rclpy",)):
        return True
    if origin == HARNESS_MODULE and (
        isinstance(value, ModuleType) or getattr(value, "__name__", name) in HARNESS_ROS_NAMES
    ):
        return True  # the harness' ROS entry points, or the harness module itself
    return name == "DOMAIN" and isinstance(value, int)


def _is_libero(name: str, value: object) -> bool:
    return _within(_origin(value), LIBERO_MODULES)


def _uses(roots: list[object], predicate: Callable[[str, object], bool]) -> bool:
    return any(predicate(name, value) for name, value in reached(roots))


def _roots(item: pytest.Item) -> list[object]:
    """The test function and the functions of every fixture it uses."""
    roots: list[object] = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        roots += [d.func for d in defs]
    return [r for r in roots if r is not None]


def _in_libero_module(item: pytest.Item) -> bool:
    path = Path(str(item.path)).resolve()
    if path.parent.parent == TEST_ROOT and path.parent.name in LIBERO_DIRS:
        return True
    module = getattr(item, "module", None)
    return module is not None and any(_is_libero(n, v) for n, v in vars(module).items())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test ``ros`` / ``libero`` from what it uses (see the module docstring), then
    give it its marker's timeout."""
    for item in items:
        roots = _roots(item)
        if _uses(roots, _is_ros):
            item.add_marker(pytest.mark.ros)
        if _in_libero_module(item) or _uses(roots, _is_libero):
            item.add_marker(pytest.mark.libero)
        _set_timeout(config, item)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The backstop's delay (see the module docstring)."""
    parser.addini(
        "timeout_hard_exit_after",
        "seconds after a test's timeout at which a test still running ends the run",
        default=str(HARD_EXIT_AFTER),
    )


def _base_timeout(config: pytest.Config) -> float:
    """``--timeout`` / ``PYTEST_TIMEOUT`` / setup.cfg's ``timeout`` (0: none)."""
    if not config.pluginmanager.hasplugin("timeout"):
        return 0.0
    import pytest_timeout

    return float(pytest_timeout.get_env_settings(config).timeout or 0.0)


def _item_timeout(item: pytest.Item) -> float:
    """The timeout pytest-timeout applies to ``item`` (0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
        if value is not None:
            return float(value)
    return _base_timeout(item.config)


def _set_timeout(config: pytest.Config, item: pytest.Item) -> None:
    base = _base_timeout(config)
    if base <= 0 or item.get_closest_marker("timeout") is not None:
        return
    longer = [MARKER_TIMEOUTS[m.name] for m in item.iter_markers() if m.name in MARKER_TIMEOUTS]
    if longer and max(longer) > base:
        item.add_marker(pytest.mark.timeout(max(longer)))


def _hard_exit(item: pytest.Item, after: float, grace: float) -> None:
    """The backstop: the test did not come back after its timeout's signal."""
    import pytest_timeout

    item.config.get_terminal_writer().line(
        f"\n{item.nodeid}: still running {grace:g} s after its {after:g} s timeout "
        "(stuck in C code?): ending the run"
    )
    pytest_timeout.timeout_timer(item, pytest_timeout.get_env_settings(item.config))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator:
    """Arm the backstop of the test's timeout (see the module docstring)."""
    timeout = _item_timeout(item)
    grace = float(item.config.getini("timeout_hard_exit_after"))
    timer = None
    if timeout > 0:
        timer = threading.Timer(timeout + grace, _hard_exit, (item, timeout, grace))
        timer.name = f"timeout backstop {item.nodeid}"
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()


def _off_thread_failures() -> str:
    """Failures recorded by the harness since the last check ('' when none)."""
    harness = sys.modules.get(HARNESS_MODULE)  # not imported: nothing ran in the background
    if harness is None:
        return ""
    return harness.describe(harness.take_failures())


def _check_after(phase: str) -> Generator:
    __tracebackhide__ = True
    try:
        result = yield
    except BaseException as exc:
        if failures := _off_thread_failures():
            exc.add_note(f"also, in the background during the {phase}:\n{failures}")
        raise
    if failures := _off_thread_failures():
        raise AssertionError(f"in the background during the {phase}:\n{failures}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator:
    """Fail the setup when something failed in the background meanwhile."""
    __tracebackhide__ = True
    return (yield from _check_after("setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator:
    """Fail the test when something failed in the background while it ran."""
    __tracebackhide__ = True
    return (yield from _check_after("test"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator:
    """Fail the teardown when something failed in the background during it."""
    __tracebackhide__ = True
    return (yield from _check_after("teardown"))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-session folder holding the tiny checkpoints."""
    return tmp_path_factory.mktemp("tiny_checkpoints")


@pytest.fixture(scope="session")
def tiny_smolvla_dir(tiny_cache: Path) -> Path:
    """A tiny SmolVLA checkpoint folder (2 cameras, state 8, action 7, chunk 10, 10 steps)."""
    return ensure_tiny_checkpoint(TinySpec(policy_type="smolvla"), tiny_cache)


@pytest.fixture(scope="session")
def tiny_pi05_dir(tiny_cache: Path) -> Path:
    """A tiny pi0.5 checkpoint folder (same features as the SmolVLA one)."""
    return ensure_tiny_checkpoint(TinySpec(policy_type="pi05"), tiny_cache)


@pytest.fixture(scope="session", params=["smolvla", "pi05"])
def tiny_checkpoint(request: pytest.FixtureRequest, tiny_cache: Path) -> Path:
    """Each tiny checkpoint in turn."""
    return ensure_tiny_checkpoint(TinySpec(policy_type=request.param), tiny_cache)
