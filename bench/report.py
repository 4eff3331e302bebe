"""The table, the targets and the JSON of a run."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.measures import DIRECT, PMZFS, RCLONE
from bench.processes import tool_version

# results[scenario][measure][system] is the dict a measure returned, or
# {"skipped": reason} or {"error": message}.
Results = dict[str, dict[str, dict[str, dict]]]


def machine_info(repository: Path) -> dict[str, object]:
    """Describe the machine and the software versions of a run."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(repository), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rclone": tool_version(["rclone", "version"]),
        "curl": tool_version(["curl", "--version"]),
        "ffprobe": tool_version(["ffprobe", "-version"]),
        "pmzfs_commit": commit.stdout.strip() or "unknown",
        "load_average": os.getloadavg(),
    }


# ---------------------------------------------------------------- formatting


def _number(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(result: dict | None, render: Callable[[dict], str]) -> str:
    if result is None:
        return ""
    if "skipped" in result:
        return "skipped"
    if "error" in result:
        return "error"
    try:
        return render(result)
    except (KeyError, TypeError):
        return "-"


def _ratio(numerator: dict | None, denominator: dict | None, key: str) -> str:
    try:
        value = numerator[key] / denominator[key]
    except (KeyError, TypeError, ZeroDivisionError):
        return ""
    return f"{value:.2f}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure's value for each system."""

    measure: str
    label: str
    render: Callable[[dict], str]
    # Key whose pmzfs/rclone and pmzfs/direct ratios the row shows, if any.
    ratio_key: str | None = None


def _latency(result: dict) -> str:
    text = f"{_number(result['median_ms'])} / {_number(result['p90_ms'])}"
    if "median_rtts" in result:
        text += f" ({_number(result['median_rtts'], 2)} RTT)"
    return text


def _listing(phase: str) -> Callable[[dict], str]:
    def render(result: dict) -> str:
        requests = result[f"{phase}_folder_list_calls"] + result[f"{phase}_index_pages"]
        extra = result[f"{phase}_link_requests"]
        text = f"{_number(result[f'{phase}_seconds'], 2)} s, {requests} lists"
        return text + (f" + {extra} HEAD" if extra else "")

    return render


ROWS = (
    Row("sequential", "sequential read, MB/s", lambda r: _number(r["mb_per_s"]), "mb_per_s"),
    Row("sequential", "CPU s per GiB read", lambda r: _number(r["cpu_s_per_gib"], 2)),
    Row("ttfb-open", "first byte after open, ms median / p90", _latency),
    Row("ttfb-seek", "first byte after seek, ms median / p90", _latency),
    Row("random", "16 threads x 128 KiB random, MB/s (p50 ms)",
        lambda r: f"{_number(r['mb_per_s'])} ({_number(r['p50_ms'])})", "mb_per_s"),
    Row("amplification", "fetched / read, random 1 MiB reads", lambda r: _number(r["amplification"], 2)),
    Row("ffprobe", "ffprobe: MiB fetched, s", lambda r: f"{_number(r['mib_fetched'], 2)}, {_number(r['seconds'], 2)} s"),
    Row("ls", "ls -l large folder, cold", _listing("cold")),
    Row("ls", "ls -l large folder, warm", _listing("warm")),
    Row("find", "find over the tree, cold",
        lambda r: f"{_number(r['seconds'], 2)} s, {r['folder_list_calls'] + r['index_pages']} lists"
        + (f" + {r['link_requests']} HEAD" if r["link_requests"] else "")),
    Row("rsync", "first rsync -a of the files: s, API calls, uploads",
        lambda r: f"{_number(r['first_sync_seconds'], 1)} s, {r['first_sync_api_calls']}, {r['first_sync_uploads']}"),
    Row("rsync", "no-op rsync -a: s, API calls, uploads",
        lambda r: f"{_number(r['seconds'], 2)} s, {r['api_calls']}, {r['uploads']}"),
    Row("memory", "peak RSS, MB (streaming + random readers)", lambda r: _number(r["peak_rss_mb"])),
)


def render_table(results: Results) -> str:
    """Render the results as a Markdown table, one block of rows per scenario."""
    lines = [
        "| scenario | measure | direct | pmzfs | rclone | pmzfs / rclone | pmzfs / direct |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario, measures in results.items():
        for row in ROWS:
            systems = measures.get(row.measure)
            if not systems:
                continue
            cells = [_cell(systems.get(system), row.render) for system in (DIRECT, PMZFS, RCLONE)]
            ratios = ["", ""]
            if row.ratio_key:
                ratios = [
                    _ratio(systems.get(PMZFS), systems.get(RCLONE), row.ratio_key),
                    _ratio(systems.get(PMZFS), systems.get(DIRECT), row.ratio_key),
                ]
            lines.append(f"| {scenario} | {row.label} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def render_notes(results: Results) -> str:
    """List every skipped or failed measure with its reason."""
    notes = []
    for scenario, measures in results.items():
        for measure, systems in measures.items():
            for system, result in systems.items():
                if "skipped" in result:
                    notes.append(f"- {scenario}, {measure}, {system}: skipped: {result['skipped']}")
                elif "error" in result:
                    notes.append(f"- {scenario}, {measure}, {system}: error: {result['error']}")
    return "\n".join(notes)


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A goal for pmzfs: a limit on one number of one scenario."""

    scenario: str | None  # None: every scenario that has the measure
    measure: str
    description: str
    # Returns (value, limit, holds) from the measure's results by system.
    check: Callable[[dict[str, dict]], tuple[float, float, bool]]
    higher_is_better: bool


def _pmzfs(systems: dict[str, dict]) -> dict:
    return systems[PMZFS]


def _sequential_over(reference: str, limit: float) -> Callable[[dict[str, dict]], tuple[float, float, bool]]:
    def check(systems: dict[str, dict]) -> tuple[float, float, bool]:
        value = systems[PMZFS]["mb_per_s"] / systems[reference]["mb_per_s"]
        return value, limit, value >= limit

    return check


def _loopback_check(systems: dict[str, dict]) -> tuple[float, float, bool]:
    value, limit, holds = _sequential_over(RCLONE, 1.5)(systems)
    cpu_holds = systems[PMZFS]["cpu_s_per_gib"] <= systems[RCLONE]["cpu_s_per_gib"]
    return value, limit, holds and cpu_holds


def _at_most(key: str, limit: float) -> Callable[[dict[str, dict]], tuple[float, float, bool]]:
    def check(systems: dict[str, dict]) -> tuple[float, float, bool]:
        value = _pmzfs(systems)[key]
        return value, limit, value <= limit

    return check


def _listing_check(systems: dict[str, dict]) -> tuple[float, float, bool]:
    result = _pmzfs(systems)
    cold, warm = result["cold_folder_list_calls"], result["warm_folder_list_calls"]
    return cold + warm, 1, cold == 1 and warm == 0


TARGETS = (
    Target("rtt40", "sequential", "sequential read / direct >= 0.95", _sequential_over(DIRECT, 0.95), True),
    Target("rtt40", "ttfb-seek", "first byte after seek, median <= 1.25 RTT", _at_most("median_rtts", 1.25), False),
    Target("rtt40-cap25", "sequential", "sequential read / direct >= 3", _sequential_over(DIRECT, 3.0), True),
    Target("rtt40-cap25", "ttfb-seek", "first byte after seek, median <= 2 RTT", _at_most("median_rtts", 2.0), False),
    Target("loopback", "sequential", "sequential read / rclone >= 1.5, CPU s/GiB <= rclone's", _loopback_check, True),
    Target("rtt40", "amplification", "bytes fetched / bytes read <= 2", _at_most("amplification", 2.0), False),
    Target(None, "ffprobe", "ffprobe of the large MP4 fetches <= 16 MiB", _at_most("mib_fetched", 16.0), False),
    Target(None, "ls", "ls -l: 1 folder/list cold, 0 warm", _listing_check, False),
    Target(None, "memory", "peak RSS <= 200 MB", _at_most("peak_rss_mb", 200.0), False),
)


def evaluate_targets(results: Results) -> list[dict]:
    """Check every target against the run; a target without data is 'not measured'."""
    verdicts = []
    for target in TARGETS:
        if target.scenario is not None and target.scenario not in results:
            continue
        scenarios = [target.scenario] if target.scenario else list(results)
        for scenario in scenarios:
            systems = results.get(scenario, {}).get(target.measure)
            verdict = {"scenario": scenario, "measure": target.measure, "target": target.description}
            try:
                value, limit, holds = target.check(systems)
            except (KeyError, TypeError, ZeroDivisionError):
                if target.scenario or systems:
                    verdicts.append({**verdict, "status": "not measured"})
                continue
            verdict.update(value=value, limit=limit, status="holds" if holds else "fails")
            if not holds and limit:
                shortfall = (limit - value) / limit if target.higher_is_better else (value - limit) / limit
                verdict["off_by"] = f"{abs(shortfall) * 100:.0f}%"
            verdicts.append(verdict)
    return verdicts


def render_targets(verdicts: list[dict]) -> str:
    lines = ["| scenario | target | pmzfs | status |", "| --- | --- | --- | --- |"]
    for verdict in verdicts:
        value = _number(verdict.get("value"), 2)
        status = verdict["status"]
        if "off_by" in verdict:
            status += f" (off by {verdict['off_by']})"
        lines.append(f"| {verdict['scenario']} | {verdict['target']} | {value} | {status} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
