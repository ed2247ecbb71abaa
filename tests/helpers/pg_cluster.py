"""A PostgreSQL cluster of a test's (or benchmark's) own, to stop and restart at will.

Fault tests restart the database under a running server, so they never use
the suite's database or a shared server: they make a cluster in their own
directory with pgserver's bundled binaries (PostgreSQL 16, from PyPI). The
test is therefore the same whatever DATABASE_URL says. PostgreSQL refuses to
run as root; as root the cluster runs as the `pgserver` user, as the embedded
database does (pgserver creates it when missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers.served import free_port

STOP_TIMEOUT_SECONDS = 60


class PgCluster:
    """initdb'd in directory/data, listening on 127.0.0.1 on a free port, trust auth."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._user: str | None = None

    def _bin(self, name: str) -> str:
        from pgserver._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _as_owner(self, *args: str) -> list[str]:
        # setpriv rather than subprocess's user=: that makes Python fork without
        # vfork, and a fork of a process running gRPC threads can crash the child.
        if self._user is None:
            return list(args)
        return ["setpriv", f"--reuid={self._user}", f"--regid={self._user}", "--init-groups", "--", *args]

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._as_owner(*args), capture_output=True, text=True, timeout=STOP_TIMEOUT_SECONDS)
        if result.returncode != 0:
            log = (self.directory / "postgres.log").read_text(errors="replace")[-3000:] if self.log_exists else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}\n{log}")

    @property
    def log_exists(self) -> bool:
        return (self.directory / "postgres.log").exists()

    def init(self) -> PgCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._user = "pgserver"
            entry = ensure_user_exists(self._user)
            assert entry is not None
            ensure_prefix_permissions(self.directory)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(
            self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        return self

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
            "-o", options, "-w", "start",
        )  # fmt: skip

    def dump(self, *args: str) -> str:
        """pg_dump's plain SQL of the database, narrowed by pg_dump's args (e.g. --exclude-schema)."""
        result = subprocess.run(
            [self._bin("pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *args, "postgres"],
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_SECONDS,
            check=True,
        )
        return result.stdout

    def stop(self, mode: str = "fast") -> None:
        """Stop ("fast": disconnect every client, as an operator's restart does)."""
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop at once if running and delete the directory."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._as_owner(self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=STOP_TIMEOUT_SECONDS,
            )
        shutil.rmtree(self.directory, ignore_errors=True)
