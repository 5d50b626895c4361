"""A real PostgreSQL server for the tests of shared studies: the distribution's PostgreSQL 15 (installed on
these machines and in CI, so no database binary comes from PyPI), started in a temporary folder on a unix
socket, with password authentication (scram-sha-256), and stopped afterwards.

PostgreSQL refuses to run as root: as root, its commands run as the ``postgres`` user on folders it owns."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER, PASSWORD, DATABASE = "distill", "s3cret-pw", "studies"


def available() -> bool:
    return (BIN / "initdb").is_file() and (BIN / "pg_ctl").is_file()


@contextmanager
def server():
    """Yield the SQLAlchemy URL of a fresh database (its password in it) on a server of our own."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="distill-pg-"))  # short: a unix socket path has ~100 characters
    data, socket = root / "data", root / "sock"
    socket.mkdir()
    (root / "pw").write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(socket, "postgres")
        shutil.chown(root / "pw", "postgres")
    env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C"}

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_postgres, *cmd], env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip()[-1000:]}")

    initdb = [str(BIN / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={root / 'pw'}"]
    run(*initdb, "--encoding=UTF8", "--locale=C")  # UTF8: in SQL_ASCII, psycopg reads text as bytes
    options = f"-k {socket} -c listen_addresses='' -c max_connections=50"
    run(str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        run(str(BIN / "createdb"), "-h", str(socket), "-U", USER, DATABASE)
        yield f"postgresql://{USER}:{PASSWORD}@/{DATABASE}?host={socket}"
    finally:
        run(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
