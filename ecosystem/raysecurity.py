"""What an embedded Ray leaves where other users of the machine could reach it: nothing.

Left to itself, Ray writes its authentication token to ~/.ray/auth_token (mode 0644, kept across runs)
and its session files and Unix sockets under /tmp/ray, which it makes world-writable (0777). An
embedded Ray started here keeps both in a folder that only this user may enter. Its processes still
listen on TCP ports of every network interface (Ray 2.60 has no setting that binds them to
127.0.0.1), where every connection must present the token.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import tempfile
from pathlib import Path

TOKEN_PATH_VARIABLE = "RAY_AUTH_TOKEN_PATH"  # read by Ray's processes, which inherit it


@functools.cache
def private_folder() -> Path:
    """This process's folder (mode 0700, removed when the process ends) for its embedded Ray sessions
    (`temp_dir()`) and the token file (mode 0600) that
    every connection to them must present. One token for the process's lifetime: Ray caches the
    token it first reads, so a second session started by this process must find the same one."""
    # mkdtemp: mode 0700, a name no one else holds. Short names: Ray's Unix sockets lie four levels
    # below, and a socket's path holds at most 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="ray-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    token = folder / "auth_token"
    descriptor = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    os.environ.setdefault(TOKEN_PATH_VARIABLE, str(token))  # a token the user chose is theirs to keep
    return folder


def temp_dir() -> str:
    """The temporary directory (`ray.init(_temp_dir=...)`) of this process's embedded Ray sessions."""
    return str(private_folder() / "r")
