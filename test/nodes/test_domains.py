"""ROS domain ids for concurrent runs on one host (snapflow_ros.dds_domains and the harness'
session pool): held ids are refused to every other holder, come back when the holder dies,
stay in the portable range, and one session hands the same id for the same offset."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from snapflow_ros.dds_domains import (
    LOCK_DIR_ENV,
    PORTABLE_DOMAINS,
    DomainsExhausted,
    lock_dir,
    reserve_domains,
)

from .harness import DOMAIN_POOL_SIZE, _DomainPool, domain_id

HOLDER = """
import sys
from snapflow_ros.dds_domains import reserve_domains
held = reserve_domains(int(sys.argv[1]), start=0)
print(" ".join(map(str, held.ids)), flush=True)
sys.stdin.read()  # hold until killed
"""


@pytest.fixture
def private_locks(monkeypatch, tmp_path: Path) -> Path:
    """A lock folder of this test alone (no other run's holders)."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    return tmp_path


def held_by_someone(domain: int) -> bool:
    """Whether another open file holds the lock of ``domain``."""
    with open(lock_dir() / f"domain-{domain}.lock") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def test_ids_of_another_process_are_skipped_and_freed_when_it_dies(private_locks):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        theirs = [int(d) for d in holder.stdout.readline().split()]
        assert len(theirs) == 3 and set(theirs) <= set(PORTABLE_DOMAINS)
        mine = reserve_domains(10, start=0)
        assert not set(mine.ids) & set(theirs)
        assert all(held_by_someone(d) for d in theirs)
        mine.release()
    finally:
        holder.kill()  # no clean-up code runs: the kernel drops its locks
        holder.wait(30)
    again = reserve_domains(3, start=0)
    assert again.ids == theirs
    again.release()


def test_contiguous_blocks_and_an_exhausted_range(private_locks):
    block = reserve_domains(4, contiguous=True, start=10)
    assert block.ids == list(range(block.ids[0], block.ids[0] + 4))
    rest = reserve_domains(len(PORTABLE_DOMAINS), minimum=1)
    assert len(rest.ids) == len(PORTABLE_DOMAINS) - 4
    with pytest.raises(DomainsExhausted, match=rf"held, in {private_locks}: .*\(pid \d+\)"):
        reserve_domains(1)
    block.release()
    with pytest.raises(DomainsExhausted, match="5 consecutive"):
        reserve_domains(5, contiguous=True)  # four free, but not five
    rest.release()


def test_excluded_ids_are_never_handed_out(private_locks):
    skip = set(PORTABLE_DOMAINS) - {70, 71}
    held = reserve_domains(2, exclude=skip)
    assert sorted(held.ids) == [70, 71]
    held.release()


def test_session_pool_same_offset_same_id_new_offsets_in_turn(private_locks, monkeypatch):
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    pool = _DomainPool()
    first = [pool.get(offset, 1) for offset in range(DOMAIN_POOL_SIZE)]
    assert len(set(first)) == DOMAIN_POOL_SIZE and set(first) <= set(PORTABLE_DOMAINS)
    assert [pool.get(offset, 1) for offset in range(DOMAIN_POOL_SIZE)] == first
    assert pool.get(100, 1) == first[0]  # the pool comes round again
    pair = pool.get(101, 2)  # two consecutive ids of the (contiguous, here) pool
    assert pair in first and pair + 1 in first
    assert all(held_by_someone(d) for d in first)


def test_ids_of_one_module_differ_even_when_allocated_late(private_locks, monkeypatch):
    """A test asking for a domain while it runs comes after every module's import-time ids in
    turn; it still gets none of its own module's."""
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    pool = _DomainPool()
    ids_a = [pool.get(k, 1, "test_a") for k in range(6)]
    ids_b = [pool.get(k, 1, "test_b") for k in range(10, 14)]  # the pool comes round
    assert set(ids_b) & set(ids_a)
    late = pool.get(99, 1, "test_a")
    assert late not in ids_a and late in ids_b


def test_session_pool_skips_the_callers_domain(private_locks, monkeypatch):
    probe = reserve_domains(1)
    caller = probe.ids[0]  # what the pool would take first without the exclusion
    probe.release()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(caller))
    pool = _DomainPool()
    assert caller not in [pool.get(offset, 1) for offset in range(DOMAIN_POOL_SIZE)]


def test_domain_id_of_this_session_is_held_and_portable():
    domain = domain_id(1)
    assert domain in PORTABLE_DOMAINS and domain_id(1) == domain
    assert held_by_someone(domain)


CHILD_RESERVES = """
import sys
from snapflow_ros.dds_domains import DomainBusy, reserve_domain
try:
    held = reserve_domain(int(sys.argv[1]))
except DomainBusy as exc:
    print("busy", exc, flush=True)
else:
    print("inherited" if held is None else "reserved", flush=True)
"""


def _child(domain: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_RESERVES, str(domain)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_given_id_is_reserved_inherited_by_children_and_refused_to_others(private_locks):
    """``reserve_domain``: a tool's ``--domain-id`` is held while the tool runs; a tool that
    its holder started (a test session running ``libero_eval``) may use it; any other process
    is refused with the holder's pid (two runs on one domain see each other's /clock)."""
    from snapflow_ros.dds_domains import DomainBusy, reserve_domain

    assert _child(60) == "reserved"  # free: the child took it (and dropped it on exit)
    mine = reserve_domain(60)
    assert mine is not None and mine.ids == [60] and held_by_someone(60)
    try:
        assert _child(60) == "inherited"  # this process (its parent) holds it
        with pytest.raises(DomainBusy, match="pid"):  # a second holder in this very process
            reserve_domain(60)
        other = subprocess.Popen(
            [sys.executable, "-c", HOLDER.replace("reserve_domains(int(sys.argv[1]), start=0)",
                                                  "reserve_domains(1, start=9)"), "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert other.stdout is not None
            (theirs,) = [int(d) for d in other.stdout.readline().split()]
            assert theirs != 60
            with pytest.raises(DomainBusy, match=f"in use by pid {other.pid}"):
                reserve_domain(theirs)  # held by a process that is not an ancestor
        finally:
            other.kill()
            other.wait(30)
    finally:
        mine.release()
    assert not held_by_someone(60)


def test_libero_eval_refuses_a_domain_another_run_holds(private_locks):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        (theirs,) = [int(d) for d in holder.stdout.readline().split()]
        exe = Path(sys.executable).parent / "libero_eval"
        done = subprocess.run(
            [str(exe), "--suites", "libero_object", "--tasks", "0", "--domain-id", str(theirs),
             "--out", str(private_locks / "out")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"ROS_DOMAIN_ID {theirs} is in use by pid {holder.pid}" in done.stderr
        assert not (private_locks / "out").exists()
    finally:
        holder.kill()
        holder.wait(30)
