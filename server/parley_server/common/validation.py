"""Input checks shared by every domain service.

A `Violations` collector gathers every problem of a request before failing, so
a caller fixing a form learns about all bad fields at once, not one per call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping

from parley_server.common.errors import FieldViolation, InvalidArgument

MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_DISPLAY_NAME_LENGTH = 100
# A token the server issued and gets back: a refresh token, an emailed link's token.
MAX_ISSUED_TOKEN_LENGTH = 512
# AIP-155 request ids; the idempotency_keys column holds 100 characters.
MAX_REQUEST_ID_LENGTH = 100
# A client's own key/value pairs ("metadata"), limited as OpenAI's APIs limit them.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_VALUE_LENGTH = 512
# Deliberately simple: one @, a dot in the domain, no spaces or control chars.
_EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f.]+$")


class Violations:
    """Collects field violations; `raise_if_any` ends the check."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)

    def text(self, field: str, value: str, *, max_length: int, required: bool = False) -> str:
        """A free-text field: stripped, length-checked, no NUL or control characters."""
        value = value.strip()
        if required and not value:
            self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        elif any(ord(c) < 32 and c not in "\n\t" for c in value):
            self.add(field, "must not contain control characters")
        return value

    def email(self, field: str, value: str) -> str:
        """Normalise (trim, lower-case) and check an email address."""
        value = value.strip().lower()
        if not value:
            self.add(field, "is required")
        elif len(value) > MAX_EMAIL_LENGTH:
            self.add(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
        elif not _EMAIL_RE.match(value):
            self.add(field, "is not a valid email address")
        return value

    def new_password(self, field: str, value: str, *, email: str) -> str:
        """The password policy: 10 to 1024 characters, and not the email address."""
        if len(value) < MIN_PASSWORD_LENGTH:
            self.add(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
        elif len(value) > MAX_PASSWORD_LENGTH:
            self.add(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
        elif email and value.strip().lower() == email.strip().lower():
            self.add(field, "must not be the email address")
        return value

    def present(self, field: str, value: str, *, max_length: int = MAX_ISSUED_TOKEN_LENGTH) -> str:
        """A required opaque value (token, password to check): non-empty, bounded."""
        if not value:
            self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")
        return value

    def uuid(self, field: str, value: str) -> uuid.UUID | None:
        """Parse a UUID string; None (and a violation) when it is not one."""
        if not value:
            self.add(field, "is required")
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self.add(field, "must be a UUID")
            return None

    def request_id(self, field: str, value: str) -> str:
        """An AIP-155 request id: optional, at most 100 printable characters."""
        if len(value) > MAX_REQUEST_ID_LENGTH:
            self.add(field, f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
        elif value and not value.isprintable():
            self.add(field, "must be printable")
        return value

    def update_mask(self, paths: Iterable[str], allowed: set[str], field: str = "update_mask") -> list[str]:
        """AIP-134: an update mask must be non-empty and name only updatable fields."""
        paths = list(paths)
        if not paths:
            self.add(field, f"must name at least one of: {', '.join(sorted(allowed))}")
        for path in paths:
            if path not in allowed:
                self.add(f"{field}.paths", f"unknown or read-only path {path!r}")
        return paths

    def metadata(self, field: str, pairs: Mapping[str, str]) -> dict[str, str]:
        """Key/value pairs: at most 16, keys 1 to 64 characters, values at most 512, no NUL
        (PostgreSQL's jsonb cannot hold it). A bad pair's violation names its key, as
        `field["key"]`. Beyond 16 pairs only the count is reported: a violation per pair of a
        huge map would make an error too large to send."""
        if len(pairs) > MAX_METADATA_PAIRS:
            self.add(field, f"must have at most {MAX_METADATA_PAIRS} pairs, not {len(pairs)}")
            return dict(pairs)
        for key, value in pairs.items():
            entry = _map_entry(field, key)
            if not key:
                self.add(entry, "key must not be empty")
            self._metadata_text(entry, key, MAX_METADATA_KEY_LENGTH, "key ")
            self._metadata_text(entry, value, MAX_METADATA_VALUE_LENGTH, "value ")
        return dict(pairs)

    def metadata_key(self, field: str, key: str) -> str:
        """One metadata key on its own (a filter's): the limits of `metadata`, empty allowed."""
        return self._metadata_text(field, key, MAX_METADATA_KEY_LENGTH)

    def metadata_value(self, field: str, value: str) -> str:
        """One metadata value on its own (a filter's): the limits of `metadata`."""
        return self._metadata_text(field, value, MAX_METADATA_VALUE_LENGTH)

    def _metadata_text(self, field: str, text: str, max_length: int, what: str = "") -> str:
        if len(text) > max_length:
            self.add(field, f"{what}must be at most {max_length} characters")
        elif "\x00" in text:
            self.add(field, f"{what}must not contain NUL characters")
        return text


def _map_entry(field: str, key: str) -> str:
    """The field path of a map's entry, `field["key"]`; a key longer than any valid one is cut
    (marked with an ellipsis) so the error stays small."""
    shown = key if len(key) <= MAX_METADATA_KEY_LENGTH else key[:MAX_METADATA_KEY_LENGTH] + "…"
    return f"{field}[{json.dumps(shown, ensure_ascii=False)}]"


def only_uuid(field: str, value: str) -> uuid.UUID:
    """The UUID of a request whose only field to check is this id; INVALID_ARGUMENT otherwise."""
    v = Violations()
    parsed = v.uuid(field, value)
    v.raise_if_any()
    assert parsed is not None
    return parsed
