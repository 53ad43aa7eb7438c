"""The exceptions mcp_host raises, all rooted at `McpHostError`.

    McpHostError
    ├── UsageError                  bad command-line input: printed without a traceback, exit code 2
    ├── ConfigError                 mcp.json or the host settings cannot be used
    │   ├── ConfigSyntaxError       not valid JSON / TOML: names file, line and column
    │   ├── ConfigSchemaError       valid JSON, wrong shape: names file, server and key
    │   ├── ConfigWriteError        the file cannot be written back
    │   ├── UndefinedVariableError  a `${VAR}` without a default names a variable that is not set
    │   └── CommandNotFoundError    a stdio server's command (or working directory) does not exist
    ├── ServerError                 something about one MCP server
    │   ├── ServerStartError        the server could not be started or connected to
    │   ├── ServerNotReadyError     a call reached a server that is not `ready`
    │   ├── ServerRequestError      a resource read, prompt or completion timed out or failed
    │   ├── NeedsLoginError         a remote server wants an OAuth login that only `mcp-host auth login` may start
    │   └── UnknownServerError      no server of that name is configured
    ├── ToolError                   something about one tool
    │   ├── UnknownToolError        no tool of that qualified name
    │   ├── ToolCallError           the call itself failed (timeout, transport, protocol)
    │   ├── BrowserError            the browser cannot do what the model asked; the message is for the model
    │   └── SandboxStartError       the python tool's sandbox could not start (reported to the model as the result)
    ├── PluginError                 something about a plugin
    │   └── ToolDefinitionError     a function cannot be a tool (an untyped parameter, *args, a bad name)
    ├── BackendError                the inference engine failed
    │   ├── ModelNotFoundError      no model matches the name
    │   ├── ModelLoadError          the model was found but the engine could not load it
    │   ├── BackendUnavailableError the engine cannot run here
    │   ├── UnsupportedFeatureError the engine lacks what was asked of it (a tokenizer, a grammar)
    │   ├── BackendConnectionError  a model server cannot be reached, timed out or dropped the connection
    │   ├── BackendResponseError    a model server answered garbage: an HTTP error, a non-JSON chunk, a cut stream
    │   └── GenerationError         a generation could not run or failed part-way
    ├── PromptError                 a prompt cannot be built
    │   ├── TemplateError           the model's chat template failed on these messages
    │   └── VocabularyError         the o200k_base vocabulary is missing or corrupt
    ├── ChatError                   a chat was used the wrong way
    │   ├── ChatBusyError           a chat already answering was asked to start another turn
    │   ├── ChatClosedError         a closed chat (or one with no task group to run in) was asked for a turn
    │   ├── UnknownApprovalError    an answer names a call or question that is not waiting for one
    │   └── ElicitationInputError   an answer to a server's form does not fit its schema
    ├── StoreError                  the API's state store cannot be used (names the file or masked URL)
    │   └── StoreConflictError      another instance holds the record's live claim, or it changed under us
    └── ApiError                    an HTTP API error, answered with its status in OpenAI's shape

A tool that runs and reports `isError` is not an exception: it is a `ToolResult`
with `is_error=True`, because the model can read it and recover.

Raise the most specific class that fits; catch the broadest one that you handle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class McpHostError(Exception):
    """Base class of every error mcp_host raises on purpose."""


class UsageError(McpHostError):
    """Bad command-line input; the CLI prints it without a traceback and exits with code 2."""


class ConfigError(McpHostError):
    """A configuration file cannot be used."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class ConfigSyntaxError(ConfigError):
    """The file is not valid JSON (or TOML); `line` and `column` are 1-based."""

    def __init__(self, message: str, *, path: Path, line: int, column: int) -> None:
        super().__init__(message, path=path)
        self.line = line
        self.column = column


class ConfigSchemaError(ConfigError):
    """The file parses but a server entry has the wrong shape."""

    def __init__(self, message: str, *, path: Path | None, server: str | None, key: str | None) -> None:
        super().__init__(message, path=path)
        self.server = server
        self.key = key


class ConfigWriteError(ConfigError):
    """The file cannot be written back (permissions, a full disk, a folder in the way)."""


class UndefinedVariableError(ConfigError):
    """A `${VAR}` without a default names a variable that is not set; `name` is the variable."""

    def __init__(self, name: str) -> None:
        super().__init__(f"${{{name}}} is not set and has no default")
        self.name = name


class CommandNotFoundError(ConfigError):
    """A stdio server's command is not on PATH, or its path or working directory does not exist."""


class ServerError(McpHostError):
    """Something about one MCP server; `server` is its name in mcp.json."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class ServerStartError(ServerError):
    """The server could not be started or did not complete the handshake."""


class ServerNotReadyError(ServerError):
    """A request reached a server whose connection is not `ready`."""


class ServerRequestError(ServerError):
    """A request to a ready server (a resource read, a prompt, a completion) timed out or failed."""


class NeedsLoginError(ServerError):
    """The server answered 401 (or asked for more scopes) and no stored token or refresh will do.

    Logins open a browser, so the host never starts one by itself; the message says what to run.
    """

    def __init__(self, server: str) -> None:
        super().__init__(f"needs login: run mcp-host auth login {server}", server=server)


class UnknownServerError(ServerError):
    """No server of that name is configured."""


class ToolError(McpHostError):
    """Something about one tool; `tool` is its qualified name (`server.tool`)."""

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class UnknownToolError(ToolError):
    """No tool of that qualified name is known."""


class ToolCallError(ToolError):
    """The call could not complete: it timed out, or the transport or protocol failed."""


class BrowserError(ToolError):
    """Something the model asked of the browser cannot be done; the message is for the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message, tool="browser")


class SandboxStartError(ToolError):
    """bwrap could not start the python tool's sandbox; the call reports it as its result."""

    def __init__(self, message: str) -> None:
        super().__init__(message, tool="python")


class PluginError(McpHostError):
    """Something about a plugin: its definition, its loading."""


class ToolDefinitionError(PluginError):
    """A function that cannot be a tool (an untyped parameter, `*args`, a bad name); says which and why."""


class BackendError(McpHostError):
    """The engine failed: a model that will not load, a server that is down or answers garbage."""


class ModelNotFoundError(BackendError):
    """No model matches the name; the message lists what was found and how to get gpt-oss."""


class ModelLoadError(BackendError):
    """The model (or a replay's recording) was found, but the engine could not load it."""


class BackendUnavailableError(BackendError):
    """The engine cannot run here (MLX off Apple Silicon, a missing optional package)."""


class UnsupportedFeatureError(BackendError):
    """The engine lacks what was asked of it: a tokenizer of its own, a grammar sampler."""


class BackendConnectionError(BackendError):
    """A model server cannot be reached, did not answer in time, or dropped the connection."""


class BackendResponseError(BackendError):
    """A model server answered something unusable: an HTTP error, a chunk that is not JSON, a stream cut short."""


class GenerationError(BackendError):
    """A generation could not run (a closed model, an empty or too long prompt) or failed part-way."""


class PromptError(McpHostError):
    """A prompt cannot be built for the model."""


class TemplateError(PromptError):
    """The model's chat template failed to render these messages."""


class VocabularyError(PromptError):
    """The o200k_base vocabulary is missing or corrupt; the message names the file."""


class ChatError(McpHostError):
    """A chat was used the wrong way."""


class ChatBusyError(ChatError):
    """A chat already answering was asked to start another turn; wait for its `TurnCompleted`."""


class ChatClosedError(ChatError):
    """A closed chat, or one with no task group to run turns in, was asked for a turn."""


class ElicitationInputError(ChatError):
    """An answer that does not fit a server's requested schema; the message lists every problem."""


class UnknownApprovalError(ChatError):
    """An approval answer names a call that is not waiting for one (unknown, answered, or of an ended turn)."""


_API_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    421: "invalid_request_error",
}


class StoreError(McpHostError):
    """The state store cannot be opened, read or written."""


class StoreConflictError(StoreError):
    """A claim or release lost to another writer: the API answers 409."""


class ApiError(McpHostError):
    """An error answered to an HTTP client: `status` is the HTTP status, `body()` OpenAI's error object.

    `raise ApiError(400, "messages must be a list", param="messages")` answers a 400 naming the parameter.
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    @property
    def type(self) -> str:
        """OpenAI's error `type` for this status."""
        return _API_ERROR_TYPES.get(self.status, "server_error")

    def body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}`, as OpenAI's API answers."""
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}
