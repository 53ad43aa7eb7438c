"""An mcp.json text checked as an editor needs it: every problem with the line and column it is about.

    check = check_config_text(text, path=Path("~/.lmstudio/mcp.json").expanduser())
    for problem in check.errors: print(problem.line, problem.column, problem.message)

The messages are the loader's own (`parse_config`), so an editor says what `mcp-host servers` says of the
same file; JSON errors carry their position, and a shape error's server and key are found back in the text
(`mcp_host.config.locate`). `${VAR}`s are checked for shape only, every variable counting as set (as
`mcp-host config add` does): one the host's environment lacks is a warning, since the host cannot apply the
file until it is set. Keys the loader does not know are warnings too. Messages name keys and variables,
never values, so a problem can be shown or logged without the secrets the file holds.

The work is bounded by the text's size: the loader names at most `MAX_WARNINGS` unknown keys (and counts
the rest), names are shortened (`shown_name`), and every problem is placed by one `Locator`, which reads
the text once however many problems there are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcp_host.config.locate import Locator, position
from mcp_host.config.mcpjson import parse_config, shown_name
from mcp_host.errors import ConfigError, ConfigSchemaError, ConfigSyntaxError


@dataclass(frozen=True)
class ConfigProblem:
    """One error or warning: the loader's message, and where in the text it is (1-based; None: the whole file)."""

    message: str
    line: int | None = None
    column: int | None = None
    server: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConfigCheck:
    """What `check_config_text` found; `ok` when there are no errors (warnings do not stop a save)."""

    errors: tuple[ConfigProblem, ...] = ()
    warnings: tuple[ConfigProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [problem.to_json() for problem in self.errors],
            "warnings": [problem.to_json() for problem in self.warnings],
        }


def check_config_text(text: str, *, path: Path, environ: Mapping[str, str] | None = None) -> ConfigCheck:
    """Check `text` as the mcp.json at `path` (used in messages only); `environ` is the host's environment.

    Never raises for a bad text: every problem is in the result.
    """
    surrogate = _lone_surrogate(text)
    if surrogate is not None:  # a JSON `"\\ud800"` escape reaches here as text that cannot be saved as UTF-8
        line, column = position(text, surrogate)
        message = f"{path}:{line}:{column}: a lone surrogate (U+{ord(text[surrogate]):04X}) cannot be saved as UTF-8"
        return ConfigCheck(errors=(ConfigProblem(message, line, column),))
    try:
        config = parse_config(text, path=path, environ=EveryVariableSet())
    except ConfigError as exc:
        return ConfigCheck(errors=(problem_of(exc, text),))
    except RecursionError:  # `json.loads` gives up on a few thousand nested brackets
        return ConfigCheck(errors=(ConfigProblem(f"{path}: nested too deeply to be an mcp.json", 1, 1),))
    places = Locator(text)
    named = zip(config.warnings, config.unknown_keys, strict=False)  # the last warning may count the rest
    warnings = [_placed(message, places, *unknown) for message, unknown in named]
    warnings.extend(ConfigProblem(message) for message in config.warnings[len(config.unknown_keys) :])
    try:
        parse_config(text, path=path, environ=os.environ if environ is None else environ)
    except ConfigError as exc:  # only a variable unset here fails now: the shape passed above
        warnings.append(problem_of(exc, text, places))
    return ConfigCheck(warnings=tuple(warnings))


def problem_of(error: ConfigError, text: str, places: Locator | None = None) -> ConfigProblem:
    """`error` (from parsing `text`) as a problem placed in `text` (by `places`, when it already read it)."""
    if isinstance(error, ConfigSyntaxError):
        return ConfigProblem(str(error), error.line, error.column)
    if isinstance(error, ConfigSchemaError):
        return _placed(str(error), places or Locator(text), error.server, error.key)
    return ConfigProblem(str(error))


def _placed(message: str, places: Locator, server: str | None, key: str | None) -> ConfigProblem:
    place = places.locate(server, key)
    line, column = place if place is not None else (None, None)
    shown_server = None if server is None else shown_name(server)
    return ConfigProblem(message, line, column, shown_server, None if key is None else shown_name(key))


def _lone_surrogate(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


class EveryVariableSet(Mapping[str, str]):
    """An environment where every variable is set: an editor checks shape, not whether secrets are present."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key) or "set"

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)
