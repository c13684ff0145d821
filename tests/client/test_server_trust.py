"""The socket's directory: the daemon's own, or refused; never another user's, never chmodded if not ours."""

from __future__ import annotations

import os
import stat

import pytest

from mxfd.client import Client
from mxfd.client.server import ServerConfig, ServerSetupError, start_server
from tests.client.helpers import CoreEngine

OTHER_UID = 65534




def mode_and_owner(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid


def test_a_fallback_directory_made_first_by_another_user_is_refused_and_left_alone(
    engine: CoreEngine, sockdir: str
) -> None:
    # what another user does to /tmp/mxfd-UID before the daemon starts
    spoofed = os.path.join(sockdir, f"mxfd-{os.getuid()}")
    os.mkdir(spoofed)
    os.chown(spoofed, OTHER_UID, OTHER_UID)
    os.chmod(spoofed, 0o777)
    with pytest.raises(ServerSetupError, match=rf"belongs to uid {OTHER_UID}, not to this daemon's uid"):
        start_server(engine, ServerConfig(socket=os.path.join(spoofed, "mxfd.sock")))
    assert mode_and_owner(spoofed) == (0o777, OTHER_UID)
    assert os.listdir(spoofed) == []


def test_a_private_directory_of_another_user_is_refused_too(engine: CoreEngine, sockdir: str) -> None:
    theirs = os.path.join(sockdir, "mxfd")
    os.mkdir(theirs, 0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(ServerSetupError, match=rf"belongs to uid {OTHER_UID}"):
        start_server(engine, ServerConfig(socket=os.path.join(theirs, "mxfd.sock")))
    assert mode_and_owner(theirs) == (0o700, OTHER_UID)


def test_a_symlinked_socket_directory_is_refused(engine: CoreEngine, sockdir: str) -> None:
    target = os.path.join(sockdir, "elsewhere")
    os.mkdir(target, 0o700)
    link = os.path.join(sockdir, "mxfd")
    os.symlink(target, link)
    with pytest.raises(ServerSetupError, match="is a symlink"):
        start_server(engine, ServerConfig(socket=os.path.join(link, "mxfd.sock")))
    assert os.listdir(target) == []


def test_the_daemons_own_directory_is_created_0700(engine: CoreEngine, sockdir: str) -> None:
    path = os.path.join(sockdir, f"mxfd-{os.getuid()}", "mxfd.sock")
    with start_server(engine, ServerConfig(socket=path)) as s:
        assert mode_and_owner(os.path.dirname(path)) == (0o700, os.geteuid())
        assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600


def test_the_daemons_own_loosened_directory_is_tightened(engine: CoreEngine, sockdir: str) -> None:
    own = os.path.join(sockdir, "mxfd")
    os.mkdir(own)
    os.chmod(own, 0o777)
    with start_server(engine, ServerConfig(socket=os.path.join(own, "mxfd.sock"))):
        assert mode_and_owner(own) == (0o700, os.geteuid())


def test_a_configured_directory_others_may_write_to_is_refused_unless_allowed(engine: CoreEngine, sockdir: str) -> None:
    shared = os.path.join(sockdir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    path = os.path.join(shared, "mxfd.sock")
    with pytest.raises(ServerSetupError, match="mode 0777: other users could replace the socket"):
        start_server(engine, ServerConfig(socket=path))
    assert mode_and_owner(shared) == (0o777, os.geteuid())
    with start_server(engine, ServerConfig(socket=path, allow_shared_directory=True)):
        with Client(path) as c:
            assert c.welcome["type"] == "welcome"
        assert mode_and_owner(shared) == (0o777, os.geteuid())  # allowed, and still not touched


def test_a_configured_directory_of_another_user_is_refused(engine: CoreEngine, sockdir: str) -> None:
    theirs = os.path.join(sockdir, "home")
    os.mkdir(theirs, 0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(ServerSetupError, match=rf"belongs to uid {OTHER_UID}, not to this daemon's uid 0 or root"):
        start_server(engine, ServerConfig(socket=os.path.join(theirs, "mxfd.sock"), allow_shared_directory=True))


def test_a_private_configured_directory_is_used_as_it_is(engine: CoreEngine, sockdir: str) -> None:
    home = os.path.join(sockdir, "home")
    os.mkdir(home)
    os.chmod(home, 0o755)
    with start_server(engine, ServerConfig(socket=os.path.join(home, "mxfd.sock"))):
        assert mode_and_owner(home) == (0o755, os.geteuid())


def test_the_groups_0710_directory_is_kept(engine: CoreEngine, sockdir: str) -> None:
    own = os.path.join(sockdir, "mxfd")
    with start_server(engine, ServerConfig(socket=os.path.join(own, "mxfd.sock"), group="nogroup")) as s:
        st = os.stat(own)
        assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == s.gid
