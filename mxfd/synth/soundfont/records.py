"""The nine pdta ("hydra") record types of SoundFont 2.04 section 7, as numpy structured arrays.

Theory of operation
-------------------
Each pdta chunk is an array of fixed-size little-endian records, so it is
read with one ``np.frombuffer`` per chunk (FluidR3_GM holds about 30 000
records: no Python loop per record).  :func:`read_hydra` checks what the
zone walk in :mod:`~mxfd.synth.soundfont.zones` relies on: chunk sizes are
whole records, every list ends with its terminal record (EOP, EOI, EOS and
the terminal bag, generator and modulator), and the bag and generator
indices rise monotonically and stay inside the chunk they index.  A missing
terminal generator or modulator record is tolerated, as FluidSynth does,
and counted; every other defect is a SoundFontError naming the chunk and
the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont.errors import LoadReport, SoundFontError
from mxfd.synth.soundfont.riff import HYDRA_CHUNKS, Buffer, RiffLayout

PHDR: Final = np.dtype(
    [
        ("name", "S20"),
        ("program", "<u2"),
        ("bank", "<u2"),
        ("bag", "<u2"),
        ("library", "<u4"),
        ("genre", "<u4"),
        ("morphology", "<u4"),
    ]
)
BAG: Final = np.dtype([("gen", "<u2"), ("mod", "<u2")])
MOD: Final = np.dtype([("src", "<u2"), ("dest", "<u2"), ("amount", "<i2"), ("amount_src", "<u2"), ("transform", "<u2")])
# A generator's amount is a signed word, an unsigned word (instrument, sampleID) or two range bytes
# (keyRange, velRange: low byte first); it is kept as the signed word and reinterpreted where needed.
GEN: Final = np.dtype([("oper", "<u2"), ("amount", "<i2")])
INST: Final = np.dtype([("name", "S20"), ("bag", "<u2")])
SHDR: Final = np.dtype(
    [
        ("name", "S20"),
        ("start", "<u4"),
        ("end", "<u4"),
        ("loop_start", "<u4"),
        ("loop_end", "<u4"),
        ("rate", "<u4"),
        ("original_key", "u1"),
        ("correction", "i1"),
        ("link", "<u2"),
        ("type", "<u2"),
    ]
)
DTYPES: Final = {
    "phdr": PHDR,
    "pbag": BAG,
    "pmod": MOD,
    "pgen": GEN,
    "inst": INST,
    "ibag": BAG,
    "imod": MOD,
    "igen": GEN,
    "shdr": SHDR,
}
assert tuple(DTYPES) == HYDRA_CHUNKS
assert [d.itemsize for d in DTYPES.values()] == [38, 4, 10, 4, 22, 4, 10, 4, 46]

Records = npt.NDArray[np.void]


def record_name(raw: bytes) -> str:
    """A 20-byte record name as text: up to the first NUL, Latin-1, trailing spaces removed."""
    return raw.split(b"\0", 1)[0].decode("latin-1").rstrip()


@dataclass(frozen=True)
class Hydra:
    """The pdta records, each array including its terminal record (a generator or modulator list may lack it)."""

    phdr: Records
    pbag: Records
    pmod: Records
    pgen: Records
    inst: Records
    ibag: Records
    imod: Records
    igen: Records
    shdr: Records

    @property
    def preset_count(self) -> int:
        return len(self.phdr) - 1

    @property
    def instrument_count(self) -> int:
        return len(self.inst) - 1

    @property
    def sample_count(self) -> int:
        return len(self.shdr) - 1


def _records(buf: Buffer, layout: RiffLayout, chunk: str, path: str) -> Records:
    span = layout.hydra[chunk]
    dtype = DTYPES[chunk]
    if span.size % dtype.itemsize:
        raise SoundFontError(
            path, f"pdta/{chunk}", f"size {span.size} is not a whole number of {dtype.itemsize}-byte records"
        )
    return np.frombuffer(buf, dtype=dtype, count=span.size // dtype.itemsize, offset=span.offset)


def _check_terminal(records: Records, chunk: str, terminal: str, target_len: int, target: str, path: str) -> None:
    """The header list ends with its terminal record, whose bag index is the terminal bag (the last record)."""
    if len(records) < 1:
        raise SoundFontError(path, f"pdta/{chunk}", f"missing terminal record {terminal!r}: the chunk is empty")
    last = records[-1]
    name = record_name(bytes(last["name"]))
    index = int(last["bag"])
    if index == target_len - 1:
        return
    if name != terminal:
        raise SoundFontError(
            path,
            f"pdta/{chunk}",
            f"missing terminal record {terminal!r}: the last record is {name!r} with bag index {index}, "
            f"and {target} has {target_len} records",
            record=len(records) - 1,
        )
    raise SoundFontError(
        path,
        f"pdta/{chunk}",
        f"terminal record {terminal!r} has bag index {index}, but {target} has {target_len} records "
        f"(its terminal is record {target_len - 1})",
        record=len(records) - 1,
    )


def _check_monotonic(indices: npt.NDArray[np.int64], chunk: str, what: str, path: str) -> None:
    falls = np.flatnonzero(np.diff(indices) < 0)
    if len(falls):
        i = int(falls[0]) + 1
        raise SoundFontError(
            path,
            f"pdta/{chunk}",
            f"{what} index {int(indices[i])} is below the previous record's {int(indices[i - 1])} (not monotonic)",
            record=i,
        )


def _check_bags(
    bags: Records, bag_chunk: str, lists: tuple[tuple[str, str, int], ...], path: str, report: LoadReport
) -> None:
    """Bag indices rise and end at the indexed list's terminal record (or one past it: no terminal, tolerated)."""
    for field_name, target_chunk, target_len in lists:
        index = bags[field_name].astype(np.int64)
        _check_monotonic(index, bag_chunk, field_name, path)
        last = int(index[-1])
        if last == target_len:
            report.fix("missing_terminal", f"pdta/{target_chunk}", None, "no terminal record; accepted")
        elif last != target_len - 1:
            raise SoundFontError(
                path,
                f"pdta/{bag_chunk}",
                f"terminal bag has {field_name} index {last}, but {target_chunk} has {target_len} records",
                record=len(bags) - 1,
            )


def read_hydra(buf: Buffer, layout: RiffLayout, path: str, report: LoadReport) -> Hydra:
    """Read and check the nine pdta chunks of the file in ``buf``."""
    r = {chunk: _records(buf, layout, chunk, path) for chunk in HYDRA_CHUNKS}
    phdr, pbag, inst, ibag, shdr = r["phdr"], r["pbag"], r["inst"], r["ibag"], r["shdr"]

    _check_terminal(phdr, "phdr", "EOP", len(pbag), "pbag", path)
    _check_monotonic(phdr["bag"].astype(np.int64), "phdr", "bag", path)
    _check_bags(pbag, "pbag", (("gen", "pgen", len(r["pgen"])), ("mod", "pmod", len(r["pmod"]))), path, report)
    _check_terminal(inst, "inst", "EOI", len(ibag), "ibag", path)
    _check_monotonic(inst["bag"].astype(np.int64), "inst", "bag", path)
    _check_bags(ibag, "ibag", (("gen", "igen", len(r["igen"])), ("mod", "imod", len(r["imod"]))), path, report)

    if len(shdr) < 1:
        raise SoundFontError(path, "pdta/shdr", "missing terminal record 'EOS': the chunk is empty")
    last = shdr[-1]
    last_name = record_name(bytes(last["name"]))
    if last_name != "EOS" and (int(last["start"]) or int(last["end"])):
        raise SoundFontError(
            path,
            "pdta/shdr",
            f"missing terminal record 'EOS': the last record is sample {last_name!r}",
            record=len(shdr) - 1,
        )
    return Hydra(
        phdr=phdr,
        pbag=pbag,
        pmod=r["pmod"],
        pgen=r["pgen"],
        inst=inst,
        ibag=ibag,
        imod=r["imod"],
        igen=r["igen"],
        shdr=shdr,
    )
