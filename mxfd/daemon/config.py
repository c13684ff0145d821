"""The daemon's configuration: TOML, validated whole on load.

Every key has one entry in :data:`SCHEMA` saying its type, its default and
what values are allowed.  Loading walks the file against the schema, so a
wrong value is refused with an error that names the key, the value and
what is allowed, and an unknown key (usually a typo) is refused rather than
silently ignored.  Command-line flags override the file through
:func:`apply_overrides`, which runs the same checks.

The default file is ``$XDG_CONFIG_HOME/mxfd/mxfd.toml`` (``~/.config/...``);
a missing default file means all defaults, a missing ``--config`` file is an
error.  ``config/mxfd.toml`` in the source tree documents every key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from mxfd.client.client import default_socket_path
from mxfd.limits import MAX_GAIN_DB, MAX_POLYPHONY, MIN_GAIN_DB

#: Sample rates the synth renders at.
RATES = (44100, 48000, 88200, 96000)
MIDI_APIS = ("auto", "alsa", "jack")
#: How JACK MIDI is read: JACK-Client (frame-accurate stamps) or rtmidi (period-accurate).
JACK_READERS = ("jack-client", "rtmidi")
#: What plays the audio: the JACK-native pin where a JACK server answers and the bank is a SoundFont (auto),
#: the PortAudio worker (any device), or the JACK-native pin.
AUDIO_PINS = ("auto", "portaudio", "jack")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Longest capture history the daemon keeps (the retroactive recorder's ring).
MAX_HISTORY_SECONDS = 300.0


class ConfigError(ValueError):
    """The configuration is unusable.  The message says where and why."""


# -- the config object ---------------------------------------------------------


@dataclass(frozen=True)
class SourceRule:
    """Per-source settings: the first rule whose ``match`` finds the source name wins."""

    match: str
    thru: Optional[bool] = None
    connect: Optional[bool] = None

    def matches(self, name: str) -> bool:
        return re.search(self.match, name) is not None


@dataclass(frozen=True)
class MidiConfig:
    api: str = "auto"
    jack_reader: str = "jack-client"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ("^Midi Through",)
    virtual_port: bool = True
    thru: bool = True
    raw: tuple[str, ...] = ()
    raw_baud: int = 31250
    poll_interval: float = 0.25
    sources: tuple[SourceRule, ...] = ()

    def rule_for(self, name: str) -> Optional[SourceRule]:
        for rule in self.sources:
            if rule.matches(name):
                return rule
        return None

    def wants(self, name: str) -> bool:
        """Should the hardware port ``name`` be connected automatically?"""
        rule = self.rule_for(name)
        if rule is not None and rule.connect is not None:
            return rule.connect
        if any(re.search(p, name) for p in self.exclude):
            return False
        return not self.include or any(re.search(p, name) for p in self.include)

    def thru_for(self, name: str) -> bool:
        rule = self.rule_for(name)
        if rule is not None and rule.thru is not None:
            return rule.thru
        return self.thru


@dataclass(frozen=True)
class AudioConfig:
    device: str = "default"
    rate: int = 48000
    period: int = 128
    periods: int = 2
    #: "jack": the compiled callback of mxfd.io.jack_pin renders in JACK's cycle; "portaudio": the worker;
    #: "auto": jack where a JACK server answers at start, the bank is a SoundFont and the device is "default".
    pin: str = "auto"


@dataclass(frozen=True)
class ThruConfig:
    #: Fixed key-to-sound latency in ms; None: derived from the audio pipeline depth.
    latency_ms: Optional[float] = None
    #: Added to the pipeline depth when the latency is derived.
    margin_ms: float = 0.0


@dataclass(frozen=True)
class SynthConfig:
    polyphony: int = 256
    #: Fonts stacked in order, each bank:program from the first that has it; () the system's General MIDI font, else
    #: the built-in bank; an entry ``"builtin"`` chooses the built-in bank (see :mod:`mxfd.daemon.bank`).
    soundfont: tuple[str, ...] = ()
    #: Output gain in dB (0: a font as loud as FluidSynth plays it at its default gain).
    gain: float = 0.0
    reverb: bool = True
    chorus: bool = True


@dataclass(frozen=True)
class ClientConfig:
    socket: str = field(default_factory=default_socket_path)
    group: Optional[str] = None
    allowed_uids: list[int] = field(default_factory=list)
    #: Connections served at once; more are refused with a ``busy`` error.
    max_clients: int = 2048
    #: Accept a configured socket directory other users may write to (e.g. /tmp itself).
    allow_shared_directory: bool = False


@dataclass(frozen=True)
class RecordConfig:
    history_seconds: float = MAX_HISTORY_SECONDS


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it came from (None: defaults)."""

    midi: MidiConfig = field(default_factory=MidiConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    thru: ThruConfig = field(default_factory=ThruConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: Optional[str] = None


# -- the schema ----------------------------------------------------------------

#: A check takes the raw TOML value and returns the converted one, or raises
#: ``_Bad(allowed)`` describing what would have been accepted.
Check = Callable[[Any], Any]


class _Bad(Exception):
    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


def _choice(*choices: str) -> Check:
    def check(v: Any) -> str:
        if isinstance(v, str) and v in choices:
            return v
        raise _Bad("one of " + ", ".join(repr(c) for c in choices))

    return check


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise _Bad("true or false")


def _int_range(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
            return v
        raise _Bad(f"a whole number from {lo} to {hi}")

    return check


def _number_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> float:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi:
            return float(v)
        raise _Bad(f"a number from {lo:g} to {hi:g}")

    return check


def _rate(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v in RATES:
        return v
    raise _Bad("one of " + ", ".join(str(r) for r in RATES))


def _period(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192:
        return v
    raise _Bad("a whole number of frames from 16 to 8192")


def _regex(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad("a regular expression (a string)")
    try:
        re.compile(v)
    except re.error as exc:
        raise _Bad(f"a valid regular expression ({exc})") from None
    return v


def _regex_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise _Bad("a list of regular expressions")
    return tuple(_regex(x) for x in v)


def _raw_list(v: Any) -> tuple[str, ...]:
    allowed = 'a list of raw byte sources, each "raw:" and a device path, e.g. "raw:/dev/ttyUSB0"'
    if not isinstance(v, list):
        raise _Bad(allowed)
    for x in v:
        if not (isinstance(x, str) and x.startswith("raw:/") and len(x) > 5):
            raise _Bad(allowed)
    return tuple(v)


def _device(v: Any) -> str:
    if isinstance(v, str) and v.strip():
        return v
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return str(v)
    raise _Bad('"default", a device name (or part of one) or a device index')


def _latency(v: Any) -> Optional[float]:
    if v == "auto":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 < v <= 1000.0:
        return float(v)
    raise _Bad('"auto" or a number of milliseconds above 0 and up to 1000')


def _path(v: Any) -> str:
    if isinstance(v, str) and v.startswith("/"):
        return v
    raise _Bad("an absolute path")


_SOUNDFONT_ALLOWED = '"builtin", the absolute path of an SF2 or SF3 file (or ~/...), or a list of them'


def _soundfont_entry(v: Any) -> str:
    if isinstance(v, str) and (v == "builtin" or v.startswith("/") or v.startswith("~/")):
        return v
    raise _Bad(_SOUNDFONT_ALLOWED)


def _soundfont(v: Any) -> tuple[str, ...]:
    if isinstance(v, list) and v:
        return tuple(_soundfont_entry(x) for x in v)
    return (_soundfont_entry(v),)


def _optional_name(v: Any) -> Optional[str]:
    if isinstance(v, str):
        return v or None
    raise _Bad('a group name (a string; "" for none)')


def _uid_list(v: Any) -> list[int]:
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return list(v)
    raise _Bad("a list of user ids (whole numbers ≥ 0)")


#: section -> key -> check (each key is also the field name of the section's dataclass)
SCHEMA: dict[str, dict[str, Check]] = {
    "midi": {
        "api": _choice(*MIDI_APIS),
        "jack_reader": _choice(*JACK_READERS),
        "include": _regex_list,
        "exclude": _regex_list,
        "virtual_port": _boolean,
        "thru": _boolean,
        "raw": _raw_list,
        "raw_baud": _int_range(300, 4_000_000),
        "poll_interval": _number_range(0.05, 1.0),
    },
    "audio": {
        "device": _device,
        "rate": _rate,
        "period": _period,
        "periods": _int_range(2, 8),
        "pin": _choice(*AUDIO_PINS),
    },
    "thru": {
        "latency_ms": _latency,
        "margin_ms": _number_range(0.0, 100.0),
    },
    "synth": {
        "polyphony": _int_range(1, MAX_POLYPHONY),
        "soundfont": _soundfont,
        "gain": _number_range(MIN_GAIN_DB, MAX_GAIN_DB),
        "reverb": _boolean,
        "chorus": _boolean,
    },
    "client": {
        "socket": _path,
        "group": _optional_name,
        "allowed_uids": _uid_list,
        "max_clients": _int_range(1, 65536),
        "allow_shared_directory": _boolean,
    },
    "record": {
        "history_seconds": _number_range(0.0, MAX_HISTORY_SECONDS),
    },
    "log": {
        "level": _choice(*LOG_LEVELS),
    },
}

#: keys of each ``[[midi.sources]]`` rule
SOURCE_SCHEMA: dict[str, Check] = {
    "match": _regex,
    "thru": _boolean,
    "connect": _boolean,
}

_SECTION_TYPES: dict[str, type] = {
    "midi": MidiConfig,
    "audio": AudioConfig,
    "thru": ThruConfig,
    "synth": SynthConfig,
    "client": ClientConfig,
    "record": RecordConfig,
    "log": LogConfig,
}


def _known(keys: Iterable[str]) -> str:
    return ", ".join(sorted(keys))


def _checked(where: str, key: str, value: Any, check: Check) -> Any:
    try:
        return check(value)
    except _Bad as bad:
        raise ConfigError(f"{where}{key} = {value!r}: expected {bad.allowed}") from None


def _section(name: str, table: Any, origin: str) -> Any:
    where = f"{origin}[{name}] "
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}{name} = {table!r}: expected a table ([{name}])")
    keys = SCHEMA[name]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if name == "midi" and key == "sources":
            values["sources"] = _sources(value, origin)
            continue
        if key not in keys:
            known = [*keys, "sources"] if name == "midi" else list(keys)
            raise ConfigError(f"{where}unknown key {key!r} (= {value!r}); allowed keys: {_known(known)}")
        values[key] = _checked(where, key, value, keys[key])
    return _SECTION_TYPES[name](**values)


def _sources(value: Any, origin: str) -> tuple[SourceRule, ...]:
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ConfigError(
            f"{origin}[midi] sources = {value!r}: expected [[midi.sources]] tables with keys {_known(SOURCE_SCHEMA)}"
        )
    rules = []
    for i, table in enumerate(value):
        where = f"{origin}[[midi.sources]] #{i + 1} "
        if "match" not in table:
            raise ConfigError(f"{where}has no 'match' key: expected match = a regular expression of source names")
        values = {}
        for key, v in table.items():
            if key not in SOURCE_SCHEMA:
                raise ConfigError(f"{where}unknown key {key!r} (= {v!r}); allowed keys: {_known(SOURCE_SCHEMA)}")
            values[key] = _checked(where, key, v, SOURCE_SCHEMA[key])
        rules.append(SourceRule(**values))
    return tuple(rules)


def from_mapping(data: Mapping[str, Any], origin: str = "", path: Optional[str] = None) -> Config:
    """Validate a parsed TOML document and build the :class:`Config`."""
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in SCHEMA:
            raise ConfigError(f"{origin}unknown section [{name}]; allowed sections: {_known(SCHEMA)}")
        sections[name] = _section(name, table, origin)
    return Config(**sections, path=path)


def default_config_path() -> str:
    """``$XDG_CONFIG_HOME/mxfd/mxfd.toml``, falling back to ``~/.config``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mxfd", "mxfd.toml")


def load(path: Optional[str] = None) -> Config:
    """Load and validate the config at ``path`` (None: the default file, if any)."""
    explicit = path is not None
    if path is None:
        path = default_config_path()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such config file") from None
        return Config()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return from_mapping(data, origin=f"{path}: ", path=path)


def loads(text: str) -> Config:
    """Validate a TOML string (for tests and tools)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    return from_mapping(data)


def apply_overrides(
    config: Config,
    *,
    midi_api: Optional[str] = None,
    audio_device: Optional[str] = None,
    audio_pin: Optional[str] = None,
    rate: Optional[int] = None,
    period: Optional[int] = None,
    soundfont: Union[str, Sequence[str], None] = None,
    gain: Optional[float] = None,
    reverb: Optional[bool] = None,
    chorus: Optional[bool] = None,
) -> Config:
    """Command-line flags win over the file; they pass the same checks.

    ``soundfont`` is one entry or several (a stack, in the order given); a relative path is taken from the
    current directory (the file's must be absolute).
    """
    midi = config.midi
    audio = config.audio
    synth: dict[str, Any] = {}
    if soundfont is not None:
        entries = [e.strip() for e in ([soundfont] if isinstance(soundfont, str) else soundfont)]
        entries = [os.path.abspath(e) if e and e != "builtin" and not e.startswith("~") else e for e in entries]
        value = entries[0] if len(entries) == 1 else entries
        synth["soundfont"] = _checked("--", "soundfont", value, SCHEMA["synth"]["soundfont"])
    if gain is not None:
        synth["gain"] = _checked("--", "gain", gain, SCHEMA["synth"]["gain"])
    for key, on in (("reverb", reverb), ("chorus", chorus)):
        if on is not None:
            synth[key] = _checked("--", key, on, SCHEMA["synth"][key])
    if midi_api is not None:
        midi = dataclasses.replace(midi, api=_checked("--", "midi-api", midi_api, SCHEMA["midi"]["api"]))
    changes: dict[str, Any] = {}
    if audio_device is not None:
        changes["device"] = _checked("--", "audio-device", audio_device, SCHEMA["audio"]["device"])
    if audio_pin is not None:
        changes["pin"] = _checked("--", "audio-pin", audio_pin, SCHEMA["audio"]["pin"])
    if rate is not None:
        changes["rate"] = _checked("--", "rate", rate, SCHEMA["audio"]["rate"])
    if period is not None:
        changes["period"] = _checked("--", "period", period, SCHEMA["audio"]["period"])
    if changes:
        audio = dataclasses.replace(audio, **changes)
    return dataclasses.replace(config, midi=midi, audio=audio, synth=dataclasses.replace(config.synth, **synth))


__all__ = [
    "AudioConfig",
    "ClientConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "MidiConfig",
    "RecordConfig",
    "SourceRule",
    "SynthConfig",
    "ThruConfig",
    "apply_overrides",
    "default_config_path",
    "default_socket_path",
    "load",
    "loads",
]
