"""Store URLs without their secrets: what may be shown in a `repr`, a log line or an error message.

    mask_url("postgresql://app:s3cret@db:5432/mcp")    # 'postgresql://app:***@db:5432/mcp'
    scrub(str(exc), url_secrets(url))                  # any message that might quote the password

A password is masked wherever a URL may carry one: after `user:` and in a `password=` query parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"


def url_secrets(url: str) -> list[str]:
    """The passwords in `url`, as written and percent-decoded, longest first.

    Raises `ValueError` if `url` cannot be parsed (then nothing in it can be shown).
    """
    parts = urlsplit(url)
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            found.add(value)
    found |= {unquote(secret) for secret in found}
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def mask_url(url: str) -> str:
    """`url` with its passwords replaced by `***`; all of it after the scheme if it cannot be parsed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition(':')[0]}://{MASK}"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hosts}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, MASK if key == "password" else value) for key, value in pairs], safe="*")
    if (netloc, query) != (parts.netloc, parts.query):
        url = scrub(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), url_secrets(url))
    return url


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret in it replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
