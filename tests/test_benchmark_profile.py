"""The benchmarks' profile summary (benchmarks/profile.py) counts the busy threads
of a server, one process or `--workers N` (py-spy --subprocesses), alike."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile import summary

HANDLER = "ConversationHandlers.GetConversation (parley_server/conversations/handlers.py:36)"
LOOP = "<module> (parley:6);main (parley_server/cli.py:307);Runner.run (asyncio/runners.py:118)"
POLLER = "thread (11): Thread-1 (_poll_wrapper);Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982)"


def test_the_poller_thread_is_left_out_with_one_process_and_with_workers(tmp_path: Path) -> None:
    one = 'process 10:"parley serve --workers 1"'
    parent, child = 'process 20:"parley serve --workers 2"', 'process 21:"parley serve --workers 2"'
    stacks = {
        "one.txt": [f"{one};thread (10): MainThread;{LOOP};{HANDLER} 3", f"{one};{POLLER} 9"],
        "workers.txt": [f"{parent};{child};thread (21): MainThread;{LOOP};{HANDLER} 3", f"{parent};{child};{POLLER} 9"],
    }
    for name, lines in stacks.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        text = summary(path, name, 300.0, "request")
        assert text.startswith(f"{name}: 3 samples"), text
        assert "Thread.run" not in text
        assert "100.0%    300.0 us/request  ConversationHandlers.GetConversation" in text
