"""Starting the package's executables (and any other command) as child processes.

The one place where a child process is started and stopped (``libero_eval``, the demo, the
benchmarks, ``scripts/make_golden_bag.py`` and the tests use it; a node's own start-up, spin
and exit are :mod:`snapflow_ros.nodes.process`):

* what to run: :func:`executable` (a console script of this package, else ``python -m`` its
  module), its parameters file (:func:`config_dir`, :func:`write_params`) and environment
  (:func:`ros_env`: localhost discovery, a domain id of its own);
* :class:`ManagedProcess`: a child in its own process group, its output in a log file, kept in
  memory (``capture``) or left on this process's terminal. :meth:`ManagedProcess.stop` sends
  SIGINT (a node's Ctrl-C: it shuts down in order) to the whole group, then escalates to
  SIGTERM and SIGKILL for a child that does not end within its grace period;
  :func:`stop_all` does it for several at once;
* :func:`watch`: the ``alive`` check of :func:`snapflow_ros.client.waiting.wait_until`, so a
  wait on a child fails as soon as it has died, naming it and the end of its output.

No ROS import.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

import snapflow_ros

Escalation = Sequence[tuple[int, float]]
ESCALATE: Escalation = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0))
"""After the first signal's grace period: SIGTERM, then SIGKILL (seconds to wait after each)."""
KILL: Escalation = ((signal.SIGKILL, 10.0),)
"""After the first signal's grace period: SIGKILL at once."""


# ---------------------------------------------------------------------------- what to run
def _default_interrupt() -> None:
    """In the child before exec: Ctrl-C (SIGINT) back to its default action.

    A program started in the background by a non-interactive shell (``cmd &``, nohup, some
    CI runners) inherits SIGINT *ignored*, and so would every process this module starts:
    the graceful stop (SIGINT first) would then wait out its whole grace period and end in
    SIGTERM. Python only installs its KeyboardInterrupt handler when SIGINT is at the default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def config_dir() -> Path:
    """The package's ``config/`` folder: from the ament index (installed package), else next
    to the sources, else ``<python prefix>/share/snapflow_ros/config``."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("snapflow_ros")) / "config"
        if installed.is_dir():
            return installed
    except Exception:  # not in an ament index (pip / editable install)
        pass
    source = Path(snapflow_ros.__file__).resolve().parents[1] / "config"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "snapflow_ros" / "config"


def node_parameters(data: dict[str, Any], node_key: str) -> dict[str, Any]:
    """The ``ros__parameters`` of the ``/**/<node_key>`` section (any key ending in
    ``node_key``) of a params file's content; created when the file has none."""
    key = next((k for k in data if str(k).rstrip("/").endswith(node_key)), f"/**/{node_key}")
    return data.setdefault(key, {}).setdefault("ros__parameters", {})


def params_with_overrides(
    base_file: Path, node_key: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """A ``/**/<node>:`` params file's content with ``overrides`` (dotted names) applied."""
    data = yaml.safe_load(Path(base_file).read_text()) or {}
    params = node_parameters(data, node_key)
    for name, value in overrides.items():
        node = params
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


def write_params(base_file: Path, node_key: str, overrides: dict[str, Any], out: Path) -> Path:
    """Copy a ``/**/<node>:`` params file with ``overrides`` (dotted names) applied."""
    data = params_with_overrides(base_file, node_key, overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def entry_module(name: str) -> str:
    """The module of executable ``name``, from this package's entry points (setup.py's
    ``console_scripts``: the one list of executables)."""
    for ep in importlib.metadata.entry_points(group="console_scripts", name=name):
        module = ep.value.split(":")[0]
        if module.startswith(("snapflow_ros.", "snapflow_training.")):
            return module
    raise ValueError(f"{name!r} is not an executable of snapflow_ros (see setup.py)")


def executable(name: str) -> list[str]:
    """Command that runs an executable of this package (console script next to this Python,
    else ``python -m`` its module)."""
    script = shutil.which(name, path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-m", entry_module(name)]


def ros_env(domain: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: localhost discovery, optionally another ROS domain."""
    env = dict(os.environ if base is None else base)
    if domain is not None:
        env["ROS_DOMAIN_ID"] = str(domain)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ---------------------------------------------------------------------------- the process
class ManagedProcess:
    """``cmd`` as a child in its own process group (``name`` in messages); a context manager
    that stops it on the way out, so it is never left running when the caller fails.

    Its output (stdout and stderr together) goes to ``log_path`` (a new file), or with
    ``capture`` into memory (the last ``keep_lines`` lines; ``echo``: also copied to this
    process's stdout as it comes), else to this process's stdout and stderr.
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        *,
        capture: bool = False,
        echo: bool = False,
        keep_lines: int | None = None,
    ) -> None:
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.log_path = log_path
        self._file: IO[str] | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._lines_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        piped = capture and log_path is None
        stdout: Any = subprocess.PIPE if piped else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = stdout = open(log_path, "w")  # noqa: SIM115 (closed when it ends)
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                env=env,
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout is not None else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_default_interrupt,
                **({"text": True, "errors": "replace"} if piped else {}),
            )
        except BaseException:
            if self._file is not None:
                self._file.close()
            raise
        if self.proc.stdout is not None:
            self._reader = threading.Thread(
                target=self._read, args=(self.proc.stdout, echo), name=f"{name}_output", daemon=True
            )
            self._reader.start()

    def _read(self, stream: IO[str], echo: bool) -> None:
        for line in stream:
            with self._lines_lock:
                self._lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
        stream.close()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The child's process id (also its process group's)."""
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit code (negative: the signal that ended it), None while it runs."""
        return self.proc.poll()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything it printed so far (the captured lines when capturing; all of it once it
        has ended)."""
        if self._reader is not None and self.proc.poll() is not None:
            self._reader.join(5.0)  # the output it wrote before it ended
        if self.log_path is not None:
            try:
                return self.log_path.read_text(errors="replace")
            except OSError:
                return ""
        with self._lines_lock:
            return "".join(self._lines)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its output."""
        return "\n".join(self.log().splitlines()[-lines:])

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to its process group (nothing if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for it to end; its exit
        code, or None if it still runs. Once it has ended, its output is complete."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish()
        return code

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(5.0)  # the rest of the output (a grandchild may hold the pipe)
        if self._file is not None and not self._file.closed:
            self._file.close()

    def stop(
        self, sig: int = signal.SIGINT, timeout: float = 30.0, escalate: Escalation = ESCALATE
    ) -> int | None:
        """``sig`` (Ctrl-C by default) to its process group, ``timeout`` seconds to end, then
        each signal of ``escalate`` in turn; returns the exit code (see :func:`stop_all`)."""
        return stop_all([self], sig, timeout, escalate)[0]


def stop_all(
    processes: Iterable[ManagedProcess],
    sig: int = signal.SIGINT,
    timeout: float = 30.0,
    escalate: Escalation = ESCALATE,
) -> list[int | None]:
    """Stop several processes together: ``sig`` to each process group in the given order, up
    to ``timeout`` seconds for all of them to end, then each ``(signal, seconds)`` of
    ``escalate`` to those still running. The exit codes, in order (-9: killed; None only if
    even the last signal left one running)."""
    procs = list(processes)
    for signum, grace in ((sig, timeout), *escalate):
        running = [p for p in procs if p.alive()]
        if not running:
            break
        for proc in running:
            proc.send_signal(signum)
        deadline = time.monotonic() + grace
        for proc in running:
            proc.wait(max(deadline - time.monotonic(), 0.0))
    for proc in procs:
        if not proc.alive():
            proc._finish()
    return [p.returncode for p in procs]


def first_exit(processes: Iterable[ManagedProcess | None], log_lines: int = 0) -> str:
    """'' while every process runs (None entries are skipped), else ``NAME exited with code
    N`` for the first one that ended, with the last ``log_lines`` lines of its output."""
    for proc in processes:
        if proc is None or proc.alive():
            continue
        text = f"{proc.name} exited with code {proc.returncode}"
        if log_lines:
            where = f"its log ({proc.log_path})" if proc.log_path is not None else "its output"
            text += f"; {where} ends with:\n{proc.log_tail(log_lines)}"
        return text
    return ""


def watch(*processes: ManagedProcess, log_lines: int = 0) -> Callable[[], str]:
    """An ``alive`` check for :func:`~snapflow_ros.client.waiting.wait_until`: names the first
    of ``processes`` that has exited (:func:`first_exit`)."""
    return lambda: first_exit(processes, log_lines)
