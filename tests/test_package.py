"""The package's public API: what the docstring documents is what ``__all__`` exports; the core is sans-I/O."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import types

import mxfd


def test_every_name_the_package_docstring_documents_is_exported() -> None:
    assert mxfd.__doc__ is not None
    documented = set(re.findall(r":(?:class|func|data):`(\w+)`", mxfd.__doc__))
    assert len(documented) > 10  # the pattern still finds the list
    assert sorted(documented - set(mxfd.__all__)) == []


def test_all_lists_each_public_name_once_and_every_one_is_mxfds_own() -> None:
    assert len(mxfd.__all__) == len(set(mxfd.__all__))
    public = {n for n, v in vars(mxfd).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public | set(mxfd._LAZY) == set(mxfd.__all__)
    for name in mxfd.__all__:
        obj = getattr(mxfd, name)
        # ReferenceTime is an alias of int, the one builtin the API names.
        if isinstance(obj, (type, types.FunctionType)) and obj is not int:
            assert obj.__module__.startswith("mxfd."), f"{name} comes from {obj.__module__}"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from mxfd import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(mxfd.__all__)


def test_the_version_is_the_installed_distributions() -> None:
    assert mxfd.__version__ == importlib.metadata.version("mxfd")


def test_the_core_imports_no_midi_audio_or_socket_library() -> None:
    # In a fresh interpreter, so modules the test run already imported do not count.
    code = (
        "import importlib, pkgutil, sys, mxfd.core\n"
        "for m in pkgutil.iter_modules(mxfd.core.__path__): importlib.import_module('mxfd.core.' + m.name)\n"
        "print(' '.join(sorted(n for n in ('rtmidi', 'sounddevice', 'jack', 'socket') if n in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
