"""The results table: the machine it ran on, and every figure with its median, min and max."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from bench.harness import Figure

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_facts() -> dict[str, str]:
    """Cores, memory and CPU model of this machine (from /proc on Linux)."""
    facts = {"cores": str(os.cpu_count() or "?"), "memory": "?", "CPU": platform.processor() or "?"}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    facts["memory"] = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    facts["CPU"] = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    facts["Python"] = platform.python_version()
    return facts


def _number(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    sign = "≥" if figure.higher_is_better else "≤"
    return f"{sign} {_number(figure.target, figure.unit)}"


def _met(figure: Figure) -> str:
    return {None: "", True: "yes", False: "**no**"}[figure.met]


def render(
    started: datetime,
    facts: Mapping[str, str],
    command: str,
    results: Mapping[str, Sequence[Figure]],
    failures: Mapping[str, str],
) -> str:
    """The markdown report of one run."""
    lines = [
        f"# Benchmark results, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        " · ".join(f"{key}: {value}" for key, value in facts.items()),
        "",
    ]
    for name, figures in results.items():
        lines += [
            f"## {name}",
            "",
            "| figure | unit | median | min | max | target | met? |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for f in figures:
            cells = [_number(v, f.unit) for v in (f.median, f.min, f.max)]
            lines.append(
                f"| {f.name} | {f.unit} | {' | '.join(cells)} | {_target(f)} | {_met(f)} |"
            )
        lines.append("")
    for name, error in failures.items():
        lines += [f"## {name}", "", f"**failed**: {error}", ""]
    return "\n".join(lines)


def write(started: datetime, text: str) -> Path:
    """Keep the report in bench/results/<UTC timestamp>.md."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started:%Y-%m-%dT%H%M%SZ}.md"
    path.write_text(text)
    return path
