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
