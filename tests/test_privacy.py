"""Nothing of a run that another user of the machine can reach: an embedded Ray's token and session
files are private to the user (checked by their mode bits), and a run computed in process opens no
socket and starts no process. Each check runs in a process of its own, with HOME and TMPDIR of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecosystem.bases.cache import cache_root
from tests.helpers import TINY, as_options

# Starts an embedded Ray as a run does, and prints where its token and session files are, and their modes.
RAY_SESSION = """
import json, os, ray, stat
from ecosystem.hosting import ray_session
with ray_session(None):
    token = os.environ["RAY_AUTH_TOKEN_PATH"]
    folder = os.path.dirname(token)
    session = ray._private.worker._global_node.get_session_dir_path()
    modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in (folder, token)}
    print(json.dumps({"token": token, "session": session, "modes": modes, "owner": os.stat(folder).st_uid}))
"""

# A run computed in this process: every connection it makes and process it starts, recorded by an audit
# hook, and the sockets it holds open at the end. (Binding is not recorded: importing urllib3 binds a
# socket to ::1 and closes it at once, to learn whether the machine has IPv6.)
IN_PROCESS_RUN = """
import json, os, sys, psutil
EVENTS = {"socket.connect", "socket.sendto", "subprocess.Popen", "os.fork", "os.posix_spawn"}
seen = []

def audit(event, arguments):
    # git, asked once for the code's commit (the manifest's provenance), is the one process allowed
    program = event == "subprocess.Popen" and os.path.basename(str(arguments[0] or arguments[1][0]))
    if event in EVENTS and program != "git":
        seen.append(event)

sys.addaudithook(audit)
from ecosystem.cli import app
app(sys.argv[1:], standalone_mode=False)
print(json.dumps(seen + [str(connection) for connection in psutil.Process().net_connections("all")]))
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A home directory of a short path: an embedded Ray's Unix sockets lie under its temporary
    directory, and a socket's path holds at most 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def python(code: str, home: Path, *arguments: str) -> str:
    """Run `code` in a new Python process whose home and temporary directories are in `home` (the model
    cache stays where it is); the last line it printed."""
    (home / "tmp").mkdir()
    environment = {**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp"), "ECOSYSTEM_CACHE": str(cache_root())}
    environment.pop("RAY_AUTH_TOKEN_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments], capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_an_embedded_ray_keeps_its_token_and_session_files_from_other_users(home: Path) -> None:
    seen = json.loads(python(RAY_SESSION, home))
    token, session = Path(seen["token"]), Path(seen["session"])
    folder = token.parent
    # The folder only its user may enter, above every file and socket of the session; the token only
    # its user may read. (Ray makes its own folders inside world-writable: the folder above them is not.)
    assert seen["modes"] == {str(folder): 0o700, str(token): 0o600} and seen["owner"] == os.getuid()
    assert folder.parent == home / "tmp" and folder in session.parents
    # Nowhere else: no ~/.ray/auth_token, no TMPDIR/ray; and the folder is removed when the process ends.
    assert not (home / ".ray").exists()
    assert list((home / "tmp").iterdir()) == []


def test_a_run_in_process_opens_no_socket_and_starts_no_process(home: Path) -> None:
    out = home / "run"
    seen = python(IN_PROCESS_RUN, home, "run", "--out", str(out), *as_options(TINY))
    assert json.loads(seen) == []
    assert (out / "metrics.parquet").is_file()  # the run did compute
