"""Where the checkout is: tests read its protos, docs and page sources, and build from it."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
