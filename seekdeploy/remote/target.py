"""`user@host[:port]` strings, validated strictly before anything reaches ssh.

A host string comes from the command line and becomes an argument of `ssh`; it never reaches a
shell, but a leading '-' would still be read by ssh as an option (`-oProxyCommand=…`), and spaces or
shell metacharacters are never part of a real host name, so anything outside the plain grammar is
refused here, before any subprocess starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seekdeploy.errors import RemoteError

# A user name: POSIX portable characters, not starting with '-'.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# A host name, ~/.ssh/config alias or IPv4 address: labels of letters, digits, '-', '_' and '.'.
_HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")
# An IPv6 address, only inside brackets: hex digits, ':' and '.' (for mapped IPv4).
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_FORM = "user@host, user@host:port, host or user@[ipv6]:port (letters, digits, '.', '-', '_')"


@dataclass(frozen=True)
class SshTarget:
    """A validated SSH destination: optional user, host (name, alias or address), optional port."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> "SshTarget":
        """Parse `user@host[:port]`; raise `RemoteError` on anything that is not plainly that.

        Rejects empty parts, whitespace, shell metacharacters, a leading '-' and ports outside
        1-65535, naming the accepted form in the message.
        """
        if not isinstance(text, str) or not text:
            raise RemoteError(f"empty SSH host: give the device as {_FORM}")
        user, at, rest = text.rpartition("@")
        if at and not _USER_RE.fullmatch(user):
            raise _bad(text, f"the user name {user!r} is not a plain user name")
        host, port_text = _split_port(text, rest)
        if host.startswith("[") and host.endswith("]"):
            if not _IPV6_RE.fullmatch(host[1:-1]) or ":" not in host:
                raise _bad(text, f"{host!r} is not an IPv6 address")
            host = host[1:-1]
        elif not _HOST_RE.fullmatch(host) or ".." in host:
            raise _bad(text, f"the host {host!r} is not a plain host name or address")
        port = _parse_port(text, port_text) if port_text is not None else None
        return cls(host=host, user=user if at else None, port=port)

    @property
    def destination(self) -> str:
        """What ssh is given as the destination: `user@host` or `host` (no port)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def label(self) -> str:
        """A human-readable form for messages and result keys."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text

    def __str__(self) -> str:
        return self.label


def _split_port(text: str, rest: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise _bad(text, "an IPv6 address opened with '[' is not closed with ']'")
        host, tail = rest[: close + 1], rest[close + 1 :]
        if tail and not tail.startswith(":"):
            raise _bad(text, f"unexpected {tail!r} after the IPv6 address")
        return host, (tail[1:] if tail else None)
    if rest.count(":") > 1:
        raise _bad(text, "put an IPv6 address in brackets: user@[::1]:22")
    host, colon, port_text = rest.partition(":")
    if not host:
        raise _bad(text, "the host part is empty")
    return host, (port_text if colon else None)


def _parse_port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not port_text.isascii():
        raise _bad(text, f"the port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _bad(text, f"the port {port} is outside 1-65535")
    return port


def _bad(text: str, why: str) -> RemoteError:
    return RemoteError(f"invalid SSH host {text!r}: {why}; give the device as {_FORM}")
