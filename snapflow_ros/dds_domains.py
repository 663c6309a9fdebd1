"""ROS domain ids that no other process on this host is using at the same time.

A domain id is reserved by an exclusive ``flock`` on ``domain-<id>.lock`` in a host-wide folder
(:func:`lock_dir`). The lock belongs to the open file, so it is released when the holder
releases it, exits or dies; the descriptor is not inherited by child processes. Ids come from
:data:`PORTABLE_DOMAINS`: with larger ids the DDS ports (7400 + 250 * id + ...) reach Linux's
ephemeral port range (32768 and up), where another socket may already hold them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

PORTABLE_DOMAINS = range(52, 102)
"""The ids handed out: 52..101, the portable range (as in ``snapflow_demo``'s own choice)."""

LOCK_DIR_ENV = "SNAPFLOW_DOMAIN_LOCK_DIR"


class DomainsExhausted(RuntimeError):
    """Fewer ids of the range are free than were asked for."""


class DomainBusy(RuntimeError):
    """The id asked for is held by another process (not one of this process' ancestors)."""


def lock_dir() -> Path:
    """The folder of the lock files: ``$SNAPFLOW_DOMAIN_LOCK_DIR``, else ``/tmp`` (host-wide,
    like the ports it protects, whatever ``TMPDIR`` says) or the temporary folder."""
    override = os.environ.get(LOCK_DIR_ENV)
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    path = Path(override) if override else base / "snapflow_ros-dds-domains"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        if not override:
            with contextlib.suppress(OSError):  # shared by every user, like /tmp itself
                path.chmod(0o1777)
    return path


def _try_lock(domain: int, folder: Path) -> int | None:
    """An open descriptor holding the lock of ``domain``, or None when someone holds it."""
    path = folder / f"domain-{domain}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file: a read-only descriptor can lock it too
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    with contextlib.suppress(OSError):  # who holds it, for an exhausted range's message
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(domain: int, folder: Path) -> str:
    try:
        return (folder / f"domain-{domain}.lock").read_text().strip() or "?"
    except OSError:
        return "?"


class DomainReservation:
    """Domain ids held by this process until :meth:`release` (or its exit)."""

    def __init__(self, fds: dict[int, int]) -> None:
        self._fds = dict(fds)

    @property
    def ids(self) -> list[int]:
        """The reserved ids, in the order they were taken."""
        return list(self._fds)

    def release(self) -> None:
        """Give every id back."""
        for fd in self._fds.values():
            os.close(fd)  # closing the only descriptor drops the lock
        self._fds.clear()


def _scan_order(start: int, candidates: Sequence[int]) -> list[int]:
    i = start % len(candidates)
    return [*candidates[i:], *candidates[:i]]


def reserve_domains(
    count: int,
    minimum: int | None = None,
    start: int | None = None,
    exclude: Iterable[int] = (),
    contiguous: bool = False,
) -> DomainReservation:
    """Reserve up to ``count`` free ids of :data:`PORTABLE_DOMAINS` (at least ``minimum``,
    default ``count``), scanning from position ``start`` (default: from the pid, so that runs
    started one after the other do not reuse each other's ids) and skipping ``exclude``.
    ``contiguous``: ``count`` consecutive ids or nothing.

    Raises :class:`DomainsExhausted` (naming the holders' pids) when too few are free.
    """
    minimum = count if minimum is None else minimum
    folder = lock_dir()
    skip = set(exclude)
    candidates = [d for d in PORTABLE_DOMAINS if d not in skip]
    order = _scan_order(os.getpid() * 7 if start is None else start, candidates)
    fds: dict[int, int] = {}
    busy: set[int] = set()

    def take(domain: int) -> bool:
        fd = _try_lock(domain, folder)
        if fd is None:
            busy.add(domain)
            return False
        fds[domain] = fd
        return True

    if contiguous:
        wanted = set(candidates)
        for first in order:
            block = range(first, first + count)
            if set(block) <= wanted and all(take(d) for d in block):
                return DomainReservation(fds)
            DomainReservation(fds).release()
            fds.clear()
    else:
        for domain in order:
            if len(fds) == count:
                break
            take(domain)
        if len(fds) >= minimum:
            return DomainReservation(fds)
        DomainReservation(fds).release()
    held = ", ".join(f"{d} (pid {_holder(d, folder)})" for d in sorted(busy))
    wanted_text = f"{count} consecutive" if contiguous else str(minimum)
    raise DomainsExhausted(
        f"wanted {wanted_text} free ROS domain ids in {PORTABLE_DOMAINS.start}.."
        f"{PORTABLE_DOMAINS.stop - 1}, fewer are free (held, in {folder}: {held or 'none'})"
    )


def _ancestors() -> set[int]:
    """The pids of this process' parent, its parent, ... (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the name: ppid
    return found


def reserve_domain(domain: int) -> DomainReservation | None:
    """Hold ``domain`` itself for this process (any id, e.g. a ``--domain-id``). Returns the
    reservation, or None when an ancestor of this process holds it (a test session or a
    script that reserved it and started this tool on it). Raises :class:`DomainBusy`, naming
    the holder, when any other process holds it: two runs on one domain see each other's
    ``/clock`` and topics."""
    folder = lock_dir()
    fd = _try_lock(int(domain), folder)
    if fd is not None:
        return DomainReservation({int(domain): fd})
    holder = _holder(int(domain), folder)
    if holder.isdigit() and int(holder) in _ancestors():
        return None
    raise DomainBusy(
        f"ROS_DOMAIN_ID {domain} is in use by pid {holder} (a test run or another tool holds "
        f"{folder / f'domain-{domain}.lock'}): pick another id"
    )
