"""Text that leaves the process safely: URLs without passwords, bounded errors that keep their head.

`display_url` is the only way a store URL reaches a message, a log line, a stored fit or a report
(SQLAlchemy's `URL.render_as_string(hide_password=True)`); `scrub` removes a known password from
any other text (a driver's error message, a traceback line) before it is shown.  `clip_error` bounds an
error text (a stored traceback) and always keeps its first line, "Type: message".
"""
from __future__ import annotations

import math
import re
from typing import Any

HIDDEN = "***"
# user:password@ inside anything URL-like, for strings SQLAlchemy cannot parse
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s]*)(?P<at>@)")


def display_url(url: object) -> str:
    """The URL with its password replaced by ***; also for strings that are not valid URLs."""
    from sqlalchemy.engine import URL, make_url

    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    text = str(url)
    try:
        return make_url(text).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: mask anything that looks like user:pw@
        return _USERINFO.sub(lambda m: m["head"] + HIDDEN + m["at"], text)


def password_of(url: object) -> str | None:
    from sqlalchemy.engine import URL, make_url

    try:
        parsed = url if isinstance(url, URL) else make_url(str(url))
    except Exception:  # noqa: BLE001
        return None
    pw = parsed.password
    return str(pw) if pw else None


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every given secret (and any user:password@ in URLs) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    return _USERINFO.sub(lambda m: m["head"] + HIDDEN + m["at"], text)


MAX_ERROR_CHARS = 8000
MAX_HEAD_CHARS = 1000


def clip_error(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """At most `limit` characters: the first line (bounded), then as much of the end as fits."""
    head, sep, rest = text.partition("\n")
    if len(head) > MAX_HEAD_CHARS:
        head = head[:MAX_HEAD_CHARS - 3] + "..."
    if len(head) + 1 + len(rest) <= limit:
        return head + sep + rest
    room = max(limit - len(head) - len("\n...\n"), 0)
    return f"{head}\n...\n{rest[-room:] if room else ''}"


def json_safe(x: Any) -> Any:
    """Plain JSON data: numpy values as Python ones, NaN / ±inf as None (JSON has no NaN; a constant-loss
    fit has R² NaN, and `"r2": NaN` is not JSON)."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):  # numpy scalars and arrays
        return json_safe(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
