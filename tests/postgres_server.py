"""A throwaway PostgreSQL server on loopback, from the distribution's binaries (Debian: `postgresql`).

`start(root)` runs initdb into ROOT/data and starts the server on 127.0.0.1 at a free port, its
unix socket in ROOT, trust authentication, fsync off; `Server.url(db)` is the SQLAlchemy URL
and `Server.stop()` stops it (`pg_ctl stop -m fast`). PostgreSQL refuses to run as root, so as
root every server command runs as the `postgres` user (`runuser`), and ROOT is handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl, else one on PATH."""
    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/", path)
        return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    candidates = [Path(p).parent for p in reversed(found)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def why_unavailable() -> str | None:
    """None when a server can be started here; else the reason (for pytest.skip)."""
    if find_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); install them with: apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "erase") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        _run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "-s", "/bin/sh", "postgres", "-c", shlex.join(cmd)]


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, cwd="/")
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {(res.stderr or res.stdout)[-2000:]}")
    return res


def start(root: Path, db: str = "erase") -> Server:
    bindir = find_bindir()
    assert bindir is not None, why_unavailable()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = Server(bindir, root, _free_port())
    _run([str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
    options = f"-h 127.0.0.1 -p {server.port} -k {root} -F"
    _run([str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o", options, "start"])
    try:
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", db])
    except BaseException:
        server.stop()
        raise
    return server
