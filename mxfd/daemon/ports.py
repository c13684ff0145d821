"""``mxfd ports``: the MIDI inputs (and which are connected) and the audio output devices.

MIDI inputs come from the running daemon when it answers on its socket (it
knows what it connected), otherwise from the MIDI system directly, marked
with whether the config would connect them.  Audio devices are listed by a
child process: PortAudio's JACK host API can abort the process that
initialised it when the server goes away, so no mxfd process loads it but
the ones made to die.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any, Optional

from mxfd.daemon.config import Config, ConfigError, apply_overrides, load
from mxfd.io.base import BackendUnavailable, Wake, is_mxfd_port

#: Run by a child interpreter: lists PortAudio's output devices as JSON.
_LIST_AUDIO = r"""
import json, sys
try:
    import sounddevice as sd
except Exception as exc:
    print(json.dumps({"error": f"PortAudio unavailable: {exc}"})); sys.exit(0)
apis = sd.query_hostapis()
default_out = sd.default.device[1]
out = []
for d in sd.query_devices():
    if d["max_output_channels"] > 0:
        out.append({"index": d["index"], "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
                    "channels": d["max_output_channels"], "rate": d["default_samplerate"],
                    "default": d["index"] == default_out})
print(json.dumps({"devices": out}))
"""


def audio_devices(timeout: float = 15.0) -> dict[str, Any]:
    """PortAudio's output devices, queried in a child process."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LIST_AUDIO], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"the audio device query did not answer in {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        why = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"error": f"the audio device query failed: {why[0]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def daemon_inputs(config: Config, timeout: float = 2.0) -> Optional[list[dict[str, Any]]]:
    """The running daemon's inputs, or None when no daemon answers on the socket."""
    try:
        from mxfd.client import Client
    except ImportError:
        return None
    try:
        with Client(config.client.socket, name="mxfd-ports", timeout=timeout) as c:
            status = c.status()
    except (OSError, RuntimeError, ValueError):
        return None
    inputs: list[dict[str, Any]] = status.get("inputs", [])
    return inputs


def system_inputs(config: Config) -> tuple[str, list[dict[str, Any]]]:
    """(backend, inputs) straight from the MIDI system: every port, and whether it would be connected."""
    from mxfd.io.midi_in import make_backend
    from mxfd.io.raw import RawBackend

    m = config.midi
    backend = make_backend(m.api, Wake(), jack_reader=m.jack_reader, client_name="mxfd-ports")
    rows: list[dict[str, Any]] = []
    try:
        backend.open()
    except BackendUnavailable as exc:
        kind = f"{backend.kind} (unavailable: {exc})"
    else:
        kind = backend.kind
        try:
            for name in backend.list_sources():
                rows.append({"name": name, "connected": None, "wanted": m.wants(name)})
        finally:
            backend.close()
    if m.raw:
        raw = RawBackend(m.raw, Wake())
        present = set(raw.list_sources())
        for path in raw.paths:
            name = "raw:" + path
            rows.append({"name": name, "connected": None, "wanted": True, "present": name in present})
    return kind, rows


def _format_inputs(rows: list[dict[str, Any]], from_daemon: bool) -> list[str]:
    lines = []
    for r in rows:
        if from_daemon:
            mark = "connected" if r.get("connected") else "not connected"
            extra = f", {r['events']} events" if r.get("events") else ""
            if r.get("connected") and not r.get("thru", True):
                extra += ", thru off"
        else:
            mark = "would connect" if r["wanted"] else "excluded by config"
            if r.get("present") is False:
                mark = "device absent"
            extra = ""
        lines.append(f"  {r['name']}  ({mark}{extra})")
    return lines or ["  (none)"]


def main(args: argparse.Namespace) -> int:
    """List MIDI inputs and audio devices; exit 2 for a bad config."""
    try:
        config = apply_overrides(load(getattr(args, "config", None)), midi_api=getattr(args, "midi_api", None))
    except ConfigError as exc:
        print(f"mxfd: config error: {exc}", file=sys.stderr)
        return 2
    inputs = daemon_inputs(config)
    if inputs is not None:
        print(f"MIDI inputs (from the running daemon at {config.client.socket}):")
        print("\n".join(_format_inputs([i for i in inputs if not is_mxfd_port(i["name"])], True)))
        own = [i["name"] for i in inputs if is_mxfd_port(i["name"])]
        if own:
            print("  mxfd's own input port(s): " + ", ".join(own))
    else:
        kind, rows = system_inputs(config)
        print(f"MIDI inputs ({kind}; no daemon is running, so nothing is connected):")
        print("\n".join(_format_inputs(rows, False)))
    audio = audio_devices()
    print("Audio output devices:")
    if "error" in audio:
        print(f"  ({audio['error']})")
    else:
        devices = [d for d in audio["devices"] if not is_own_device(d)]
        for d in devices:
            default = "  [default]" if d["default"] else ""
            print(f"  {d['index']}: {d['name']} ({d['hostapi']}, {d['channels']} ch, {d['rate']:g} Hz){default}")
        if not devices:
            print("  (none)")
    return 0


def is_own_device(device: dict[str, Any]) -> bool:
    """An mxfd JACK client that PortAudio lists as a device: no place to send sound, so not offered."""
    return "JACK" in str(device.get("hostapi")) and is_mxfd_port(str(device.get("name")))


__all__ = ["audio_devices", "daemon_inputs", "is_own_device", "main", "system_inputs"]
