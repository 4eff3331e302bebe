"""``python -m bench``: pmzfs beside curl and rclone mount, on the same bytes.

One run starts the emulator in its own process. For each scenario it sets
the emulator's round-trip time and rate cap, then mounts pmzfs and rclone
in turn and runs the measures on each. It prints a table of numbers and
ratios and writes the JSON of the run to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench import report
from bench.config import FULL_SIZES, QUICK_SIZES, SCENARIOS, Sizes
from bench.control import ServerControl
from bench.dataset import DATASET_ROOT, RSYNC_FOLDER
from bench.measures import DIRECT, MEASURES, PMZFS, RCLONE, SYSTEMS, Context, Skipped, Subject
from bench.processes import BenchError, Mount, pmzfs_mount, rclone_mount
from bench.profile import recording

log = logging.getLogger("bench")

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPOSITORY / "bench" / "results"
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# Measures that --profile samples pmzfs in: the ones bound by its CPU time.
PROFILED_MEASURES = ("sequential", "random", "memory")


def parse_size(text: str) -> int:
    """Parse a byte count such as ``1G``, ``256M`` or ``65536``."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}; use a number of bytes with K, M or G, like 1G or 256M")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def _names(choices: dict | tuple, what: str):
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or text!r}; choose from {', '.join(choices)}")
        return names

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files and few samples (seconds, for the smoke test)")
    parser.add_argument("--scenario", type=_names(SCENARIOS, "scenario"), action="extend",
                        help=f"comma-separated scenarios to run (default: all of {', '.join(SCENARIOS)})")
    parser.add_argument("--only", type=_names(MEASURES, "measure"), action="extend",
                        help="comma-separated measures to run in every selected scenario (default: each of "
                        f"{', '.join(MEASURES)} in its own default scenarios)")
    parser.add_argument("--system", type=_names(SYSTEMS, "system"), action="extend",
                        help=f"comma-separated systems to measure (default: all of {', '.join(SYSTEMS)})")
    parser.add_argument("--size", type=parse_size, help="bytes of the file that the sequential read streams (default 1G; 16M with --quick)")
    parser.add_argument("--work-dir", type=Path, default=Path(os.environ.get("PMZFS_BENCH_DIR", "/var/tmp/pmzfs-bench")),
                        help="folder for the cached dataset, mountpoints and logs (default /var/tmp/pmzfs-bench or $PMZFS_BENCH_DIR)")
    parser.add_argument("--output", type=Path, help="path of the JSON results (default bench/results/<date>.json)")
    parser.add_argument("--profile", action="store_true",
                        help="sample pmzfs with py-spy during the sequential, random and memory measures "
                        "(slows pmzfs down: for diagnosis, not for numbers)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    return parser


def check_tools(systems: list[str]) -> None:
    """Fail early with the package to install when a program the run needs is missing."""
    needed = {"ffprobe": "ffmpeg", "ffmpeg": "ffmpeg", "fusermount3": "fuse3", "ls": "coreutils", "find": "findutils"}
    if DIRECT in systems:
        needed["curl"] = "curl"
    if RCLONE in systems:
        needed["rclone"] = "rclone"
    if PMZFS in systems:
        needed["rsync"] = "rsync"
    missing = sorted({package for tool, package in needed.items() if shutil.which(tool) is None})
    if missing:
        raise BenchError(f"missing programs; install the Debian packages {' '.join(missing)} (./bootstrap.sh bench does)")
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise BenchError("/dev/fuse is not usable; run the benchmark as root or add yourself to the fuse group")


def _mount(system: str, scenario: str, server: ServerControl, work_dir: Path, logs: Path):
    mountpoint = work_dir / "mnt" / system
    log_path = logs / f"{scenario}-{system}.log"
    if system == PMZFS:
        cache_dir = work_dir / "pmzfs-cache" / scenario
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache_dir.mkdir(parents=True)
        from bench.server import API_KEY

        return pmzfs_mount(
            mountpoint, api_url=server.base_url, api_key=API_KEY, cache_dir=cache_dir,
            config_path=work_dir / "pmzfs-config.toml", log_path=log_path,
        )
    return rclone_mount(mountpoint, index_url=server.index_url, config_path=work_dir / "rclone.conf", log_path=log_path)


def _run_one(context: Context, subject: Subject, name: str, logs: Path, profile: bool) -> dict:
    function = MEASURES[name].function
    if not (profile and subject.system == PMZFS and name in PROFILED_MEASURES):
        return function(context, subject)
    stem = f"{context.scenario.name}-{subject.system}-{name}"
    with recording(subject.pid, logs / f"{stem}.pyspy.txt", logs / f"{stem}.pyspy.log") as summary:
        result = function(context, subject)
    return {**result, "profile": summary}


def run_measures(context: Context, subject: Subject, measures: list[str], logs: Path, profile: bool) -> dict[str, dict]:
    """Run each measure on one subject; a failing measure is recorded, not fatal."""
    results = {}
    for name in measures:
        measure = MEASURES[name]
        log.info("%s: %s on %s", context.scenario.name, measure.title, subject.system)
        started = time.monotonic()
        try:
            results[name] = _run_one(context, subject, name, logs, profile)
        except Skipped as exc:
            results[name] = {"skipped": str(exc)}
        except (OSError, RuntimeError, subprocess.SubprocessError, BenchError) as exc:
            log.warning("%s failed on %s in %s: %s", name, subject.system, context.scenario.name, exc)
            results[name] = {"error": str(exc)}
        except Exception as exc:
            # A bug in a measure: keep the traceback in the log and go on with the others.
            log.exception("%s crashed on %s in %s", name, subject.system, context.scenario.name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        log.debug("%s on %s took %.1f s: %s", name, subject.system, time.monotonic() - started, results[name])
    return results


def run_scenario(
    context: Context, systems: list[str], measures: list[str], logs: Path, *, explicit: bool = False, profile: bool = False
) -> dict[str, dict[str, dict]]:
    """Run every selected measure on every system in one scenario.

    A measure runs only in its default scenarios unless ``explicit`` (the
    measures were named with --only).
    """
    scenario = context.scenario
    context.server.configure(scenario)
    by_measure: dict[str, dict[str, dict]] = {}
    for system in systems:
        wanted = [
            name for name in measures
            if system in MEASURES[name].systems
            and (explicit or MEASURES[name].scenarios is None or scenario.name in MEASURES[name].scenarios)
        ]
        if not wanted:
            continue
        if system == PMZFS and "rsync" in wanted:
            # The no-op rsync needs a first rsync that uploads every file into
            # this scenario's fresh mount, so the target starts out missing.
            context.server.remove_folder(RSYNC_FOLDER)
        if system == DIRECT:
            outcome = run_measures(context, Subject(DIRECT), wanted, logs, profile)
        else:
            try:
                with _mount(system, scenario.name, context.server, context.work_dir, logs) as mount:
                    mount: Mount
                    subject = Subject(system, mount.mountpoint / DATASET_ROOT, mount.pid)
                    outcome = run_measures(context, subject, wanted, logs, profile)
            except BenchError as exc:
                log.warning("%s could not be measured in %s: %s", system, scenario.name, exc)
                outcome = {name: {"error": str(exc)} for name in wanted}
        for name, result in outcome.items():
            by_measure.setdefault(name, {})[system] = result
    return by_measure


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sizes: Sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.size:
        sizes = replace(sizes, stream_size=args.size)
    scenarios = args.scenario or list(SCENARIOS)
    measures = args.only or list(MEASURES)
    systems = args.system or list(SYSTEMS)
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    try:
        check_tools(systems)
        work_dir = args.work_dir.resolve()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        logs = work_dir / "logs" / stamp
        logs.mkdir(parents=True, exist_ok=True)
        results: report.Results = {}
        log.info("starting the emulator (the first full run seeds the dataset, about 13 GiB, which takes a minute or two)")
        server = ServerControl(work_dir, sizes, logs / "emulator.log")
        try:
            for name in scenarios:
                context = Context(sizes=sizes, scenario=SCENARIOS[name], server=server, work_dir=work_dir)
                results[name] = run_scenario(
                    context, systems, measures, logs, explicit=args.only is not None, profile=args.profile
                )
        finally:
            server.close()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

    verdicts = report.evaluate_targets(results)
    document = {
        "command": command,
        "machine": report.machine_info(REPOSITORY),
        "sizes": sizes.to_json(),
        "scenarios": {name: vars(SCENARIOS[name]) for name in scenarios},
        "results": results,
        "targets": verdicts,
        "logs": str(logs),
    }
    output = args.output or RESULTS_DIR / f"{stamp}.json"
    report.write_json(output, document)
    print()
    print(report.render_table(results))
    notes = report.render_notes(results)
    if notes:
        print("\n" + notes)
    print("\n" + report.render_targets(verdicts))
    print(f"\nJSON: {output}\nlogs: {logs}")
    return 0
