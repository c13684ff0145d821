"""The compiler's clean pages are given back after start-up; nothing that was written is."""

from __future__ import annotations

import subprocess
import sys

from mxfd.synth.resident import Mapping, parse_smaps, reclaimable

SMAPS = """\
7f0000000000-7f0000365000 r--p 00000000 fe:00 5324866    /venv/llvmlite/binding/libllvmlite.so
Size:               3476 kB
Rss:                3476 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
7f0000365000-7f0005394000 r-xp 00365000 fe:00 5324866    /venv/llvmlite/binding/libllvmlite.so
Size:              82108 kB
Rss:               52324 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7f0009677000-7f000983c000 r--p 09677000 fe:00 5324866    /venv/llvmlite/binding/libllvmlite.so
Size:               1812 kB
Rss:                1792 kB
Anonymous:          1792 kB
VmFlags: rd mr mw me ac sd
7f000983c000-7f0009865000 rw-p 0983c000 fe:00 5324866    /venv/llvmlite/binding/libllvmlite.so
Size:                164 kB
Rss:                 156 kB
Anonymous:           156 kB
7f0010000000-7f0010001000 r-xp 00000000 fe:00 42    /usr/lib/libc.so.6
Rss:                   4 kB
Anonymous:             0 kB
7f0020000000-7f0020100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Anonymous:          1024 kB
"""


def test_smaps_mappings_are_read_with_their_resident_and_copied_sizes() -> None:
    maps = list(parse_smaps(SMAPS))
    assert len(maps) == 6
    assert maps[1] == Mapping(0x7F0000365000, 0x7F0005394000, "r-xp", "/venv/llvmlite/binding/libllvmlite.so",
                              52324, 0)  # fmt: skip
    assert maps[5].path == "" and maps[5].anonymous_kib == 1024


def test_only_the_compilers_unwritten_mappings_are_reclaimable() -> None:
    # Not the relocated read-only segment (its pages are copies), not the data, not another library.
    assert [m.start for m in reclaimable(parse_smaps(SMAPS))] == [0x7F0000000000, 0x7F0000365000]


_RELEASE_AND_COMPILE = """
import numba, numpy as np
from mxfd.synth.resident import release_compiler_pages, reclaimable, _own_mappings
print(release_compiler_pages())
print(sum(m.rss_kib for m in reclaimable(_own_mappings())))
print(numba.njit(lambda a: a.sum())(np.ones(3)))  # the compiler still runs: its pages come back
"""


def test_the_pages_given_back_leave_the_process_and_the_compiler_still_works() -> None:
    done = subprocess.run([sys.executable, "-c", _RELEASE_AND_COMPILE], capture_output=True, text=True, check=True)
    given, left, result = done.stdout.split()
    assert int(given) > 10_000, done.stdout  # tens of MiB after numba's import
    assert int(left) < int(given) / 10
    assert result == "3.0"
