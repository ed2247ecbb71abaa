"""The editable fields of an agent and the rules they must satisfy.

CreateAgent checks all of them; UpdateAgent checks the stored agent with the
masked fields applied, so rules that span fields (an OPENAI agent needs a
model) hold whichever fields a request changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

from parley_server.common.validation import Violations
from parley_server.db.models import Agent, AgentProvider, AgentVisibility

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
API_KEY_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 2000
MAX_MODEL_LENGTH = 200
MAX_BASE_URL_LENGTH = 500
MAX_API_KEY_ENV_LENGTH = 100
MAX_SYSTEM_PROMPT_LENGTH = 20000
MAX_TEMPERATURE = 2.0
MAX_OUTPUT_TOKENS = 32768


@dataclass(frozen=True)
class AgentFields:
    """What an admin may set on an agent. None for visibility or provider means
    "not set" (the request left it UNSPECIFIED or sent an unknown value)."""

    slug: str = ""
    name: str = ""
    description: str = ""
    visibility: AgentVisibility | None = None
    enabled: bool = False
    provider: AgentProvider | None = None
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""
    system_prompt: str = ""
    temperature: float = 0.0
    max_output_tokens: int = 0
    title_generation: bool = False
    # None = no quota.
    daily_message_quota: int | None = None

    def values(self) -> dict[str, object]:
        """The fields as column values of Agent (their names are the same)."""
        return {name: getattr(self, name) for name in UPDATABLE_PATHS}


# AIP-134 update_mask paths: exactly the editable fields.
UPDATABLE_PATHS = frozenset(field.name for field in fields(AgentFields))


def stored_fields(agent: Agent) -> AgentFields:
    return AgentFields(**{name: getattr(agent, name) for name in UPDATABLE_PATHS})


def with_paths(base: AgentFields, update: AgentFields, paths: list[str]) -> AgentFields:
    """base with the fields named in paths taken from update."""
    return replace(base, **{path: getattr(update, path) for path in paths})


def checked_fields(v: Violations, f: AgentFields, prefix: str = "agent") -> AgentFields:
    """f normalised (trimmed, line endings unified), with a violation per bad field."""

    def path(name: str) -> str:
        return f"{prefix}.{name}"

    slug = f.slug.strip()
    if not SLUG_RE.match(slug):
        v.add(path("slug"), "must be 1 to 64 characters of a-z, 0-9 and '-', starting with a letter or digit")
    name = v.text(path("name"), f.name, max_length=MAX_NAME_LENGTH, required=True)
    description = v.text(path("description"), _unix_newlines(f.description), max_length=MAX_DESCRIPTION_LENGTH)
    if f.visibility is None:
        v.add(path("visibility"), "must be PUBLIC, PREMIUM or RESTRICTED")
    if f.provider is None:
        v.add(path("provider"), "must be ECHO or OPENAI")
    model = v.text(path("model"), f.model, max_length=MAX_MODEL_LENGTH)
    if f.provider is AgentProvider.OPENAI and not model:
        v.add(path("model"), "is required for the OPENAI provider")
    base_url = v.text(path("base_url"), f.base_url, max_length=MAX_BASE_URL_LENGTH)
    if base_url:
        _check_base_url(v, path("base_url"), base_url)
    api_key_env = f.api_key_env.strip()
    if len(api_key_env) > MAX_API_KEY_ENV_LENGTH:
        v.add(path("api_key_env"), f"must be at most {MAX_API_KEY_ENV_LENGTH} characters")
    elif api_key_env and not API_KEY_ENV_RE.match(api_key_env):
        v.add(path("api_key_env"), "must be an environment variable name: A-Z, 0-9 and '_', not starting with a digit")
    system_prompt = v.text(path("system_prompt"), _unix_newlines(f.system_prompt), max_length=MAX_SYSTEM_PROMPT_LENGTH)
    if not 0.0 <= f.temperature <= MAX_TEMPERATURE:  # also refuses NaN
        v.add(path("temperature"), f"must be between 0 and {MAX_TEMPERATURE:g}")
    if not 0 <= f.max_output_tokens <= MAX_OUTPUT_TOKENS:
        v.add(path("max_output_tokens"), f"must be between 0 (provider default) and {MAX_OUTPUT_TOKENS}")
    if f.daily_message_quota is not None and f.daily_message_quota < 0:
        v.add(path("daily_message_quota"), "must not be negative; leave it unset for no quota")
    return replace(
        f,
        slug=slug,
        name=name,
        description=description,
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        system_prompt=system_prompt,
    )


def _unix_newlines(text: str) -> str:
    """Text pasted from Windows has CR LF; CR alone would fail the control-character check."""
    return text.replace("\r\n", "\n")


def _check_base_url(v: Violations, field: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 literal
        valid = False
    if not valid or any(c.isspace() for c in url):
        v.add(field, "must be an http or https URL, e.g. http://localhost:11434/v1")
    elif parts.username or parts.password:
        v.add(field, "must not contain credentials; name the key's environment variable in api_key_env")
