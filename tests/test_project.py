"""The project's own files: packaging metadata and the systemd unit agree with what the README installs."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from mxfd.cli import build_parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject() -> dict[str, object]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_license_is_an_spdx_string_and_the_build_backend_reads_it() -> None:
    # a license table is deprecated (setuptools warns at every build); the SPDX string needs setuptools 77
    data = _pyproject()
    project = data["project"]
    assert isinstance(project, dict) and project["license"] == "MIT"
    build = data["build-system"]
    assert isinstance(build, dict)
    (req,) = [r for r in build["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", req)
    assert m is not None and int(m.group(1)) >= 77


def _unit_exec_start() -> list[str]:
    with open(os.path.join(REPO, "systemd", "mxfd.service")) as f:
        (line,) = [ln for ln in f.read().splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def _readme() -> str:
    with open(os.path.join(REPO, "README.md")) as f:
        return f.read()


def test_the_service_unit_starts_what_the_readme_installs(tmp_path: Path) -> None:
    # the README installs with pipx, whose default PIPX_BIN_DIR is ~/.local/bin: a link to the venv's script
    readme = _readme()
    service = readme[readme.index("## Run it as a service") :]
    assert "pipx install ." in service.split("\n## ", 1)[0]
    program, *argv = _unit_exec_start()
    assert program == "%h/.local/bin/mxfd"
    build_parser().parse_args(argv)  # the unit's arguments are ones `mxfd` takes
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
    verify = ["systemd-analyze", "--user", "verify", os.path.join(REPO, "systemd", "mxfd.service")]
    missing = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=60)
    assert "is not executable" in missing.stderr  # the check can fail: without the program it does
    (home / ".local" / "bin" / "mxfd").symlink_to(Path(sys.executable).parent / "mxfd")
    ok = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr


UNIT = os.path.join(REPO, "systemd", "mxfd.service")


def _user_env(tmp_path: Path) -> dict[str, str]:
    """A user's HOME and XDG_RUNTIME_DIR, which `systemd-analyze --user` resolves the unit's paths in."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(runtime))


def _exposure(unit: str, env: dict[str, str]) -> float:
    run = subprocess.run(["systemd-analyze", "security", "--offline=true", "--user", unit],
                         env=env, capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", run.stdout)
    assert m is not None, run.stdout[-500:] + run.stderr
    return float(m.group(1))


def test_the_service_unit_exposure_score_is_at_most_2_5(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    assert _exposure(UNIT, env) <= 2.5
    # the measure can fail: the same unit without its user namespace and capability drop scores over 2.5
    with open(UNIT) as f:
        loose = [ln for ln in f.read().splitlines() if not ln.startswith(("PrivateUsers=", "CapabilityBoundingSet="))]
    (tmp_path / "mxfd.service").write_text("\n".join(loose) + "\n")
    assert _exposure(str(tmp_path / "mxfd.service"), env) > 2.5


def test_the_service_unit_documentation_is_what_the_readme_installs(tmp_path: Path) -> None:
    readme = _readme()
    service = readme[readme.index("## Run it as a service") :].split("\n## ", 1)[0]
    (line,) = [ln.strip() for ln in service.splitlines() if ln.strip().startswith("install -Dm644 README.md")]
    env = _user_env(tmp_path)
    subprocess.run(["bash", "-c", line], cwd=REPO, env=env, check=True, timeout=60)
    with open(UNIT) as f:
        (doc,) = [ln.removeprefix("Documentation=") for ln in f.read().splitlines() if ln.startswith("Documentation=")]
    assert doc.startswith("file://%h/")
    installed = Path(env["HOME"]) / doc.removeprefix("file://%h/")
    assert installed.read_text() == readme


def test_the_readme_sets_up_first_and_explains_the_internals_after() -> None:
    readme = _readme()
    sections = [ln for ln in readme.splitlines() if ln.startswith("## ")]
    assert sections[0].startswith("## Set up")
    assert sections.index("## How it works") > sections.index("## Using it") > sections.index("## Run it as a service")


def test_the_readme_names_every_command_and_flag() -> None:
    readme = _readme()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in sub.choices.items():
        if f"mxfd {name}" not in readme:
            missing.append(f"mxfd {name}")
        for action in parser._actions:
            flag = max(action.option_strings, key=len, default=None)
            if flag is not None and flag != "--help" and flag not in readme:
                missing.append(f"mxfd {name} {flag}")
    assert missing == []
