"""Who may use the page, and how a request proves it.

- Host: the request's Host header must name the address the page is bound to (or localhost,
  when bound to loopback), so a web page elsewhere cannot reach it through DNS rebinding (421).
- Token: bound to any address that is not loopback, every request carries the token kept in
  `.ai-employee/dashboard-token` (mode 0600): as `?token=` once (a cookie is set), as that cookie,
  or as `Authorization: Bearer` (401 otherwise).
- Writes: every state-changing request comes from the page's own origin (`Origin`, else
  `Referer`) and carries the CSRF token the page was given (403 otherwise). The CSRF token is an
  HMAC of a secret that lives as long as the process, so a page served before a restart asks
  to be reloaded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ...base import fsops
from ...base.errors import DashboardError

TOKEN_FILE = "dashboard-token"  # noqa: S105 - a file name, not a secret
TOKEN_COOKIE = "ai_employee_token"  # noqa: S105 - a cookie name
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create_token(machinery: Path, tmp: Path) -> tuple[str, bool]:
    """The page's access token, and whether it was just made (then it is printed once)."""
    path = machinery / TOKEN_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DashboardError(f"dashboard: {str(path)!r} is not a plain file; remove it")
    try:
        token = path.read_bytes().decode("ascii").strip()
        if len(token) >= 32:
            os.chmod(path, 0o600, follow_symlinks=False)
            return token, False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    token = secrets.token_urlsafe(32)
    machinery.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    fsops.write_atomic(path, (token + "\n").encode(), tmp, mode=0o600)
    return token, True


def _host_only(value: str) -> str:
    """`Host` without its port: `[::1]:8787` -> `::1`, `localhost:8787` -> `localhost`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass
class Guard:
    """The checks above, for one bound address. `token` is None on loopback."""

    bind_host: str
    port: int
    token: str | None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def allowed_host(self, host_header: str) -> bool:
        host = _host_only(host_header)
        if not host:
            return False
        if is_loopback(self.bind_host) and is_loopback(host):
            return True
        if self.bind_host in ("0.0.0.0", "::", ""):  # noqa: S104 - only compared with
            return self.token is not None  # the token then guards every request
        return host == _host_only(self.bind_host)

    def token_ok(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.token.encode()
        )

    def csrf_token(self) -> str:
        return hmac.new(self.secret, b"csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.csrf_token().encode()
        )

    @staticmethod
    def same_origin(origin: str | None, referer: str | None, host_header: str) -> bool:
        """The request comes from a page served by this host and port."""
        source = origin if origin and origin != "null" else referer
        if not source:
            return False
        try:
            parts = urlsplit(source)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()
