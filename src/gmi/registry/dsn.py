"""A PostgreSQL store URL as it may be shown: never its password, in any libpq spelling.

libpq takes the password from the URL's userinfo (`user:pw@`, `:pw@`), from a `password=`
query parameter (whose key may be percent-encoded) or from a key=value DSN. Error messages and
logs show the URL redacted, and a driver's message is scrubbed of the password it was given.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit


def redacted(url: str) -> str:
    """The store URL as it may be shown (error messages, logs): scheme, user, host, port and
    database; the password (`user:pw@`, `:pw@`) and EVERY query parameter's value hidden,
    since libpq takes a password from `?password=` (its key may be percent-encoded too). A
    key=value DSN shows its keys only."""
    if "://" not in url:
        return re.sub(r"=\s*('(?:[^'\\]|\\.)*'|\S*)", "=***", url)
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = "&".join(
        f"{unquote(key.partition('=')[0])}=***" for key in parts.query.split("&") if key
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def scrubbed(text: str, url: str) -> str:
    """A driver's message with this URL's password (in any spelling it was given) removed."""
    secrets = set()
    if "://" in url:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            secrets.add(unquote(userinfo.partition(":")[2]))
        for key, _, value in (p.partition("=") for p in parts.query.split("&")):
            if unquote(key).strip().lower() == "password":
                secrets.add(unquote(value))
    secrets |= set(re.findall(r"password\s*=\s*'?([^'\s]+)", url))
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text.replace(url, redacted(url))
