"""Who used the CPU during a phase: this process, named child processes, PostgreSQL, the machine.

Read from /proc (Linux): user + system time of each process, the PostgreSQL server's being its
postmaster's and every backend's (children of the postmaster, found by parent pid). On a
2-core machine shared by four programs this says where a request's cost lands, which a
profiler of one process cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
SERVICE = "service (this process)"
POSTGRES = "PostgreSQL (every backend)"
MACHINE = "the whole machine"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".bench-postgres"


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system seconds) of a process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def postmaster_pid() -> int | None:
    """The embedded server's postmaster (None when DATABASE_URL points elsewhere)."""
    if os.environ.get("DATABASE_URL"):
        return None
    data_dir = Path(os.environ.get("BOOKING_GUARD_BENCH_DATA_DIR", DEFAULT_DATA_DIR))
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _server_seconds(postmaster: int) -> float:
    """CPU seconds of the postmaster and its live children (backends, walwriter, ...)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and (stat[0] == postmaster or int(entry.name) == postmaster):
                total += stat[1]
    return total


def _machine() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, summed over cores."""
    with open("/proc/stat") as stat:
        fields = [int(v) / _TICKS for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    processes: dict[str, float]
    machine_busy: float
    machine_all: float


def snapshot(children: Mapping[str, int]) -> CpuSnapshot:
    """CPU seconds so far of this process, each named child, PostgreSQL and the machine."""
    seconds = {SERVICE: sum(os.times()[:2])}
    for name, pid in children.items():
        stat = _stat(pid)
        seconds[name] = stat[1] if stat is not None else float("nan")
    postmaster = postmaster_pid()
    if postmaster is not None:
        seconds[POSTGRES] = _server_seconds(postmaster)
    busy, total = _machine()
    return CpuSnapshot(seconds, busy, total)


def per_unit(before: CpuSnapshot, after: CpuSnapshot, units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit (attempt) for each process, the rest of the machine, all.

    Backends that ended during the phase take their time with them; the pools here live
    through it, so the PostgreSQL figure is whole.
    """
    spent = {
        name: (after.processes[name] - before.processes[name]) * 1000 / units
        for name in before.processes
    }
    machine = (after.machine_busy - before.machine_busy) * 1000 / units
    spent["anything else on the machine"] = machine - sum(spent.values())
    spent[MACHINE] = machine
    return spent
