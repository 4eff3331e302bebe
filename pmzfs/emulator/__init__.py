"""A local premiumize API server for tests, benchmarks and the offline demo.

Start one in-process with ``Emulator(...).start()`` or as ``pmzfs emulator``;
docs/emulator.md describes the options, faults and counters.
"""

from pmzfs.emulator.options import DEMO_API_KEY, EmulatorOptions
from pmzfs.emulator.server import Emulator

__all__ = ["DEMO_API_KEY", "Emulator", "EmulatorOptions"]
