"""The terminal client on a pseudo-terminal, as a user runs it (POSIX only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import subprocess
import sys

# Makes the pty the child's controlling terminal (so Ctrl-C typed into it is
# SIGINT for the child, as in a real terminal), then runs the terminal client.
BOOT = """
import fcntl, runpy, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
sys.argv = ["parley chat", *sys.argv[1:]]
runpy.run_module("parley.client.terminal", run_name="__main__", alter_sys=True)
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r")


class Terminal:
    """A child process on a pseudo-terminal, read without blocking the event loop."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOT, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.fd = master
        os.set_blocking(master, False)
        self.raw = ""
        self.pos = 0
        self.closed = False
        self._data = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            self.closed = True
            self._loop.remove_reader(self.fd)
        self.raw += data.decode(errors="replace")
        self._data.set()

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    async def expect(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """Wait for pattern in the output after the previous match."""
        regex = re.compile(pattern)
        deadline = self._loop.time() + timeout
        while True:
            if match := regex.search(self.text, self.pos):
                self.pos = match.end()
                return match
            remaining = deadline - self._loop.time()
            if self.closed or remaining <= 0:
                state = "exited" if self.closed else "timed out"
                raise AssertionError(f"{state} waiting for {pattern!r}; output:\n{self.text}")
            self._data.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._data.wait(), min(remaining, 0.5))

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def sendline(self, text: str) -> None:
        self.send(text + "\r")

    async def exit_code(self, timeout: float = 20) -> int:
        async with asyncio.timeout(timeout):
            while (code := self.process.poll()) is None:
                await asyncio.sleep(0.05)
        with contextlib.suppress(AssertionError):
            await self.expect(r"\Z", timeout=1)  # drain the output
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self.closed:
            self._loop.remove_reader(self.fd)
        os.close(self.fd)
