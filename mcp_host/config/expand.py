"""`${VAR}` and `${VAR:-default}` expansion, as LM Studio and Cursor read mcp.json."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mcp_host.errors import UndefinedVariableError as UndefinedVariableError

_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(text: str, environ: Mapping[str, str]) -> str:
    """Replace every `${VAR}` / `${VAR:-default}` in `text`.

    `${VAR:-default}` uses the default when VAR is unset or empty, as in POSIX shells.
    Anything else containing `$` is left alone. Raises `UndefinedVariableError`.

        expand_vars("Bearer ${TOKEN}", {"TOKEN": "abc"})  # 'Bearer abc'
    """

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value
        raise UndefinedVariableError(name)

    return _PATTERN.sub(substitute, text)
