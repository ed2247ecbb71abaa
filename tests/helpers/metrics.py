"""A Parley metrics endpoint read as Prometheus reads it: `curl` (the real
binary) fetches /metrics, prometheus_client's parser reads the text."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """The samples of one scrape, by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the endpoint has none (nothing counted yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples


def scrape(addr: str) -> Scrape:
    """GET http://addr/metrics with curl; fails the test when curl cannot."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("these tests scrape with curl: install it (Debian: apt-get install curl)")
    result = subprocess.run(
        [curl, "--silent", "--show-error", "--fail", f"http://{addr}/metrics"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return Scrape(result.stdout)


def rpc_labels(service: str, method: str, grpc_type: str = "unary") -> dict[str, str]:
    """The labels of an RPC's grpc_server_* samples."""
    return {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}
