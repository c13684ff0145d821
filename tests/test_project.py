"""The project's own files: packaging metadata and the systemd unit agree with what the README installs."""

from __future__ import annotations

import os
import re
import tomllib

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
