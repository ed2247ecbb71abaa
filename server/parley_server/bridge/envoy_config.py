"""Render the Envoy config template (`envoy.yaml`, beside this module).

The template stays a readable Envoy file with `${...}` placeholders
(string.Template) rather than a config built in Python, so operators can read
and diff it; this module only substitutes addresses, allowed origins and how
Envoy connects to the gRPC server (plaintext, TLS, or TLS with Envoy's own
client certificate when the server requires one).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from string import Template

from google.protobuf import descriptor_pb2

from parley_server.settings import ConfigError, Settings, split_host_port

# Package data: found the same way in a checkout and in an installed wheel.
TEMPLATE_PATH = Path(__file__).with_name("envoy.yaml")
DESCRIPTOR_SET_PATH = Path(__file__).with_name("parley.binpb")
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}


@dataclass(frozen=True)
class UpstreamTls:
    """How Envoy reaches a gRPC server with TLS: the CA it checks the server's
    certificate with, and its client certificate when the server asks for one."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamTls | None:
        """None when the server is plaintext; ConfigError when it requires client
        certificates and Envoy has none."""
        if settings.tls_cert_file is None:
            return None
        if settings.tls_client_ca_file is not None and settings.envoy_tls_cert_file is None:
            raise ConfigError(
                "PARLEY_TLS_CLIENT_CA_FILE makes the gRPC server require client certificates: give Envoy one "
                "with PARLEY_ENVOY_TLS_CERT_FILE and PARLEY_ENVOY_TLS_KEY_FILE (or serve --no-envoy)"
            )
        return cls(
            settings.envoy_tls_ca_file or settings.tls_cert_file,
            settings.envoy_tls_cert_file,
            settings.envoy_tls_key_file,
        )

    def transport_socket(self) -> dict[str, object]:
        """Envoy's TLS transport socket for the cluster (h2 by ALPN, as gRPC wants)."""
        context: dict[str, object] = {
            "alpn_protocols": ["h2"],
            "validation_context": {"trusted_ca": {"filename": str(self.ca)}},
        }
        if self.cert is not None and self.key is not None:
            context["tls_certificates"] = [
                {"certificate_chain": {"filename": str(self.cert)}, "private_key": {"filename": str(self.key)}}
            ]
        return {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": context,
            },
        }


# Envoy's default: bytes as they are.
PLAINTEXT_SOCKET = {
    "name": "envoy.transport_sockets.raw_buffer",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
}


@dataclass(frozen=True)
class EnvoyAddresses:
    """Where Envoy listens and what it forwards to, all resolved to IPs."""

    listen: tuple[str, int]
    admin: tuple[str, int]
    grpc: tuple[str, int]
    web: tuple[str, int]
    allowed_origins: tuple[str, ...]
    upstream_tls: UpstreamTls | None = None


def ip_of(host: str) -> str:
    """An IP literal for host: Envoy's STATIC clusters and listeners take no names.
    A wildcard listen address (0.0.0.0, ::) is reached through loopback."""
    if host in WILDCARD_HOSTS:
        return "::1" if ":" in host else "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve {host!r}: {exc}") from exc
    # Prefer IPv4: "localhost" often resolves to both, and gRPC binds IPv4 first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def _listen_ip(host: str) -> str:
    """Where Envoy binds: a wildcard stays a wildcard (all interfaces)."""
    if host in WILDCARD_HOSTS:
        return "::" if host == "::" else "0.0.0.0"
    return ip_of(host)


def default_origins(envoy_addr: str, public_url: str) -> tuple[str, ...]:
    """The page's own origins: Envoy's address under its IP and under
    `localhost`, plus the origin of PARLEY_PUBLIC_URL (where email links point)."""
    host, port = split_host_port(envoy_addr)
    hosts = ["127.0.0.1", "localhost"] if host in WILDCARD_HOSTS | {"127.0.0.1", "localhost"} else [host]
    origins = [f"http://{'[' + h + ']' if ':' in h else h}:{port}" for h in hosts]
    scheme, _, rest = public_url.partition("://")
    if rest:
        origins.append(f"{scheme}://{rest.split('/', 1)[0]}")
    return tuple(dict.fromkeys(origins))


def addresses(settings: Settings, grpc_port: int, web_port: int) -> EnvoyAddresses:
    """Envoy's addresses from settings and the ports actually bound at start."""
    listen_host, listen_port = split_host_port(settings.envoy_addr)
    admin_host, admin_port = split_host_port(settings.envoy_admin_addr)
    grpc_host, _ = split_host_port(settings.grpc_addr)
    origins = settings.allowed_origins or default_origins(settings.envoy_addr, settings.public_url)
    return EnvoyAddresses(
        listen=(_listen_ip(listen_host), listen_port),
        admin=(ip_of(admin_host), admin_port),
        grpc=(ip_of(grpc_host), grpc_port),
        web=("127.0.0.1", web_port),
        allowed_origins=origins,
        upstream_tls=UpstreamTls.from_settings(settings),
    )


def transcoded_services(descriptor_set: Path = DESCRIPTOR_SET_PATH) -> list[str]:
    """Every Parley service in the descriptor set: the transcoder maps those of
    their methods that have a google.api.http rule."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    return [
        f"{file.package}.{service.name}"
        for file in files.file
        if file.package.startswith("parley.")
        for service in file.service
    ]


def render(addrs: EnvoyAddresses, template: str | None = None) -> str:
    """The template with every placeholder filled; a missing one is an error."""
    text = TEMPLATE_PATH.read_text() if template is None else template
    origins = [{"exact": origin} for origin in addrs.allowed_origins]
    return Template(text).substitute(
        listen_host=addrs.listen[0],
        listen_port=addrs.listen[1],
        admin_host=addrs.admin[0],
        admin_port=addrs.admin[1],
        grpc_host=addrs.grpc[0],
        grpc_port=addrs.grpc[1],
        web_host=addrs.web[0],
        web_port=addrs.web[1],
        # JSON is YAML: a flow list of {exact: origin} matchers.
        allowed_origins=json.dumps(origins),
        grpc_transport_socket=json.dumps(
            addrs.upstream_tls.transport_socket() if addrs.upstream_tls else PLAINTEXT_SOCKET
        ),
        proto_descriptor=str(DESCRIPTOR_SET_PATH),
        transcoded_services=json.dumps(transcoded_services()),
    )


def write_config(addrs: EnvoyAddresses, data_dir: Path) -> Path:
    """Render into data_dir/envoy.yaml (what Envoy is started with) and return the path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "envoy.yaml"
    path.write_text(render(addrs))
    return path
