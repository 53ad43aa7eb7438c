"""OAuth 2.1 for remote MCP servers: the host's glue around the MCP SDK's `httpx2.Auth` providers.

    auth = auth_for("github", config)                  # what a Connection does: never opens a browser
    async with browser_login() as login:               # what `mcp-host auth login github` does
        auth = make_auth("github", config, store=TokenStore.for_server("github"), login=login)

Which flow a server gets is read from its mcp.json entry (`RemoteServerConfig.auth`): the
authorization code flow with PKCE by default, client credentials or the SEP-990 jwt-bearer grant
when configured. Tokens and the client registration live in one private file per server under
`$XDG_STATE_HOME/mcp-host/oauth/`, and never in a log line or a `repr`.

A login needs a person, so only a caller holding `LoginHandlers` starts one. Without them, a server
that wants a login makes the auth raise `NeedsLoginError` ("needs login: run mcp-host auth login
NAME") before anything is registered; stored tokens and their refresh need nobody.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
import webbrowser
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from anyio.abc import SocketAttribute, SocketStream
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import extract_field_from_www_auth, union_scopes
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, ValidationError

from mcp_host.config.files import exclusive_lock, read_private, write_atomically
from mcp_host.config.mcpjson import AuthConfig, RemoteServerConfig
from mcp_host.config.paths import oauth_dir
from mcp_host.errors import ConfigError, McpHostError, NeedsLoginError, ServerStartError
from mcp_host.servers.describe import describe_exception

logger = logging.getLogger(__name__)

CLIENT_NAME = "mcp-host"
# How long `mcp-host auth login` waits for the browser to come back.
LOGIN_TIMEOUT_S = 300.0
_CALLBACK_PATH = "/callback"
_MAX_CALLBACK_REQUEST = 8192
# Stored tokens whose expiry is this close are refreshed before use rather than sent.
_EXPIRY_MARGIN_S = 30.0


class StoredLogin(BaseModel):
    """What the token store holds for one server; tokens and client secrets stay out of `repr`."""

    model_config = ConfigDict(extra="ignore")

    tokens: OAuthToken | None = Field(default=None, repr=False)
    expires_at: float | None = Field(default=None, description="Unix time the access token expires.")
    client: OAuthClientInformationFull | None = Field(default=None, repr=False)


class TokenStore:
    """One server's OAuth tokens and client registration in a private JSON file (the SDK's `TokenStorage`).

        store = TokenStore.for_server("github")     # $XDG_STATE_HOME/mcp-host/oauth/github-<hash>.json
        store.load().tokens

    The file is 0600, replaced atomically under a lock; raises `ConfigError` when it cannot be
    read or trusted and `ConfigWriteError` when it cannot be written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_server(cls, name: str) -> TokenStore:
        return cls(oauth_dir() / f"{_file_stem(name)}.json")

    def __repr__(self) -> str:
        return f"<TokenStore {str(self.path)!r}>"

    def load(self) -> StoredLogin:
        raw = read_private(self.path)
        if raw is None:
            return StoredLogin()
        try:
            return StoredLogin.model_validate_json(raw)
        except ValidationError as exc:  # the message would quote the file, tokens included
            raise ConfigError(f"{self.path}: not a token file ({exc.error_count()} problems)", path=self.path) from None

    def delete(self) -> bool:
        """Forget the server's tokens and registration; False when there were none."""
        with exclusive_lock(self.path):
            existed = self.path.exists()
            self.path.unlink(missing_ok=True)
        return existed

    async def get_tokens(self) -> OAuthToken | None:
        return self.load().tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires_at = None if tokens.expires_in is None else time.time() + tokens.expires_in
        self._update(tokens=tokens, expires_at=expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.load().client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._update(client=client_info)

    def _update(self, **changes: object) -> None:
        with exclusive_lock(self.path):
            stored = self.load().model_copy(update=changes)
            write_atomically(self.path, stored.model_dump_json(exclude_none=True), mode=0o600)

    def staged(self) -> StagedTokenStore:
        """A copy in memory that starts with this store's client registration and no tokens (for a login)."""
        return StagedTokenStore(self)


class StagedTokenStore(TokenStore):
    """A login's store: nothing reaches the file until `commit()`, so a failed login keeps the old tokens."""

    def __init__(self, real: TokenStore) -> None:
        super().__init__(real.path)
        self.real = real
        self._stored = StoredLogin(client=real.load().client)

    def load(self) -> StoredLogin:
        return self._stored

    def _update(self, **changes: object) -> None:
        self._stored = self._stored.model_copy(update=changes)

    def commit(self) -> None:
        """Write what the login got (tokens, expiry, registration) to the real store."""
        stored = self._stored
        self.real._update(tokens=stored.tokens, expires_at=stored.expires_at, client=stored.client)  # noqa: SLF001


def _file_stem(name: str) -> str:
    """A file name for any server name: readable where it can be, unique through a hash of the original."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64] or "server"
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class LoginHandlers:
    """How an interactive login reaches the user, handed to `make_auth` or `RemoteServerConfig.with_login`.

    `redirect` gets the authorization URL (a browser opens it), `callback` returns what came back to
    `redirect_uri`. `identity_assertion(audience, resource)` returns a SEP-990 ID-JAG for the
    `jwt_bearer` grant, for callers that can get one from the enterprise identity provider.
    """

    redirect_uri: str
    redirect: Callable[[str], Awaitable[None]]
    callback: Callable[[], Awaitable[AuthorizationCodeResult]]
    identity_assertion: Callable[[str, str], Awaitable[str]] | None = None


class RemoteAuth(httpx2.Auth):
    """The `httpx2.Auth` of one remote server: the SDK provider chosen by `make_auth`, and what went wrong.

    The MCP transports run requests in background tasks that swallow exceptions, so the reason a
    connection failed is kept here: `problem()` is the `NeedsLoginError`, the failed OAuth step, or
    the 401/403 the server answered, for the connection to report instead of a transport echo.
    """

    def __init__(self, name: str, url: str, provider: httpx2.Auth | None, *, login_needs_person: bool) -> None:
        self._name = name
        self._url = url
        self._provider = provider
        self._login_needs_person = login_needs_person
        self._failure: BaseException | None = None
        self._refused: int | None = None

    def __repr__(self) -> str:
        return f"<RemoteAuth {self._name!r} {type(self._provider).__name__}>"

    def problem(self) -> McpHostError | None:
        """Why requests to the server failed, if the auth knows: raise it `from` the transport's error."""
        failure = self._failure
        if isinstance(failure, McpHostError):
            return failure
        if failure is not None:
            return ServerStartError(f"OAuth failed: {describe_exception(failure)}", server=self._name)
        if self._refused is not None:
            hint = "check its Authorization header in mcp.json" if self._provider is None else "even with a new token"
            return ServerStartError(f"HTTP {self._refused} from {self._url} ({hint})", server=self._name)
        return None

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._provider is None:
            response = yield request
            self._note(response)
            return
        flow = self._provider.async_auth_flow(request)
        answer: httpx2.Response | None = None
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                if outgoing is request:
                    if self._login_needs_person and _wants_login(response):
                        raise NeedsLoginError(self._name)
                    answer = response
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            if answer is not None:
                self._note(answer)
            return
        except Exception as exc:
            self._failure = self._failure or exc
            raise
        finally:
            await flow.aclose()

    def _note(self, final: httpx2.Response) -> None:
        """Keep a refusal that OAuth did not cure; a later success elsewhere does not undo it."""
        if final.status_code in (401, 403):
            self._refused = final.status_code


def _wants_login(response: httpx2.Response) -> bool:
    return response.status_code == 401 or (
        response.status_code == 403 and extract_field_from_www_auth(response, "error") == "insufficient_scope"
    )


class _AuthorizationCodeProvider(OAuthClientProvider):
    """The SDK's authorization code flow, with what the host adds: a pre-registered client from mcp.json,
    the configured scope joined to the one the server asks for, and stored expiry, so a token that
    expired while the host was down is refreshed rather than sent."""

    def __init__(
        self,
        url: str,
        metadata: OAuthClientMetadata,
        store: TokenStore,
        login: LoginHandlers | None,
        *,
        preset_client: OAuthClientInformationFull | None,
        client_metadata_url: str | None,
    ) -> None:
        super().__init__(
            url,
            metadata,
            store,
            login.redirect if login else None,
            login.callback if login else None,
            client_metadata_url=client_metadata_url,
        )
        self._store = store
        self._configured_scope = metadata.scope
        self._preset_client = preset_client

    async def _initialize(self) -> None:
        await super()._initialize()
        if self._preset_client is not None:
            self.context.client_info = self._preset_client
        expires_at = self._store.load().expires_at
        self.context.token_expiry_time = None if expires_at is None else expires_at - _EXPIRY_MARGIN_S

    async def _perform_authorization(self) -> httpx2.Request:
        scope = union_scopes(self.context.client_metadata.scope, self._configured_scope)
        self.context.client_metadata.scope = scope
        return await super()._perform_authorization()


def make_auth(name: str, config: RemoteServerConfig, *, store: TokenStore, login: LoginHandlers | None) -> RemoteAuth:
    """The auth for server `name`: interactive (a login may open a browser) exactly when `login` is given.

    Without an `auth` block and with an Authorization header in mcp.json, the header is the
    credential and no OAuth runs. Raises `ConfigError` when a configured private key cannot be read.
    """
    settings = config.auth
    if settings is None and any(key.lower() == "authorization" for key in config.headers):
        return RemoteAuth(name, config.url, None, login_needs_person=False)
    settings = settings or AuthConfig()
    provider: httpx2.Auth
    if settings.grant_type == "authorization_code":
        provider = _authorization_code(config.url, settings, store, login)
    elif settings.grant_type == "client_credentials":
        provider = _client_credentials(config.url, settings, store)
    else:
        provider = _identity_assertion(name, config.url, settings, store, login)
    needs_person = settings.grant_type == "authorization_code" and login is None
    return RemoteAuth(name, config.url, provider, login_needs_person=needs_person)


def auth_for(name: str, config: RemoteServerConfig) -> RemoteAuth:
    """The auth a connection to server `name` uses: its stored tokens, and `config.login` if a caller gave one."""
    return make_auth(name, config, store=TokenStore.for_server(name), login=config.login)


def _authorization_code(
    url: str, settings: AuthConfig, store: TokenStore, login: LoginHandlers | None
) -> _AuthorizationCodeProvider:
    secret = settings.client_secret.get_secret_value() if settings.client_secret else None
    method = settings.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    if method == "private_key_jwt":  # refused by AuthConfig; narrows the type
        raise ConfigError("private_key_jwt is only used with grant_type 'client_credentials'")
    # Without a person no authorization request is made, so the redirect URI is never used.
    redirect_uri = login.redirect_uri if login else "http://127.0.0.1/callback"
    metadata = OAuthClientMetadata(
        client_name=CLIENT_NAME,
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=method,
        scope=settings.scope,
    )
    preset = None
    if settings.client_id is not None:
        preset = OAuthClientInformationFull(
            client_id=settings.client_id,
            client_secret=secret,
            redirect_uris=[AnyUrl(redirect_uri)],
            token_endpoint_auth_method=method,
            issuer=settings.issuer,
        )
    return _AuthorizationCodeProvider(
        url, metadata, store, login, preset_client=preset, client_metadata_url=settings.client_metadata_url
    )


def _client_credentials(url: str, settings: AuthConfig, store: TokenStore) -> OAuthClientProvider:
    assert settings.client_id is not None, "AuthConfig requires client_id for client_credentials"
    method = settings.token_endpoint_auth_method
    if method == "private_key_jwt":
        assert settings.private_key_path is not None, "AuthConfig requires private_key_path for private_key_jwt"
        signing = SignedJWTParameters(
            issuer=settings.client_id,
            subject=settings.client_id,
            signing_key=_read_key(Path(settings.private_key_path).expanduser()),
            signing_algorithm=settings.signing_algorithm,
        )
        return PrivateKeyJWTOAuthProvider(
            url,
            store,
            settings.client_id,
            signing.create_assertion_provider(),
            scope=settings.scope,
            issuer=settings.issuer,
        )
    assert settings.client_secret is not None, "AuthConfig requires client_secret for client_credentials"
    return ClientCredentialsOAuthProvider(
        url,
        store,
        settings.client_id,
        settings.client_secret.get_secret_value(),
        token_endpoint_auth_method="client_secret_post" if method == "client_secret_post" else "client_secret_basic",
        scope=settings.scope,
        issuer=settings.issuer,
    )


def _identity_assertion(
    name: str, url: str, settings: AuthConfig, store: TokenStore, login: LoginHandlers | None
) -> IdentityAssertionOAuthProvider:
    assert settings.client_id and settings.client_secret and settings.issuer, "AuthConfig requires them for jwt_bearer"
    assertion = login.identity_assertion if login else None
    basic = settings.token_endpoint_auth_method == "client_secret_basic"

    async def identity_assertion(audience: str, resource: str) -> str:
        if assertion is None:
            raise NeedsLoginError(name)
        return await assertion(audience, resource)

    return IdentityAssertionOAuthProvider(
        url,
        store,
        settings.client_id,
        settings.client_secret.get_secret_value(),
        settings.issuer,
        identity_assertion,
        scope=settings.scope,
        token_endpoint_auth_method="client_secret_basic" if basic else "client_secret_post",
    )


def _read_key(path: Path) -> str:
    raw = read_private(path)
    if raw is None:
        raise ConfigError(f"{path}: private key not found", path=path)
    return raw.decode("utf-8", errors="replace")


# -- the browser login ------------------------------------------------------------------------------


@asynccontextmanager
async def browser_login(
    port: int | None = None,
    *,
    open_browser: Callable[[str], object] = webbrowser.open,
    notify: Callable[[str], None] | None = None,
) -> AsyncIterator[LoginHandlers]:
    """`LoginHandlers` that open the user's browser and catch its one redirect on 127.0.0.1.

        async with browser_login() as login:
            auth = make_auth(name, config, store=store, login=login)

    `port` None takes a free port (loopback redirect URIs may use any port, RFC 8252 §7.3). Only
    a request carrying the state of the authorization URL is taken, so a web page that finds the
    port cannot end the login with a code of its choosing.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port or 0)
    callback = _Callback(open_browser, notify or _print_to_stderr)
    bound = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, callback.handle)
        try:
            yield LoginHandlers(
                redirect_uri=f"http://127.0.0.1:{bound}{_CALLBACK_PATH}",
                redirect=callback.open,
                callback=callback.wait,
            )
        finally:
            tg.cancel_scope.cancel()


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class _Callback:
    def __init__(self, open_browser: Callable[[str], object], notify: Callable[[str], None]) -> None:
        self._open_browser = open_browser
        self._notify = notify
        self._state: str | None = None
        self._params: dict[str, str] | None = None
        self._done = anyio.Event()

    async def open(self, authorization_url: str) -> None:
        self._state = parse_qs(urlsplit(authorization_url).query).get("state", [""])[0]
        self._params, self._done = None, anyio.Event()
        self._notify(f"Log in through your browser; if it did not open, visit:\n  {authorization_url}")
        await anyio.to_thread.run_sync(self._open_browser, authorization_url)

    async def wait(self) -> AuthorizationCodeResult:
        with anyio.fail_after(LOGIN_TIMEOUT_S):
            await self._done.wait()
        params = self._params or {}
        if "code" not in params:
            error = params.get("error_description") or params.get("error") or "no code"
            raise OAuthFlowError(f"the authorization server did not grant access: {error}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            head = b""
            with anyio.move_on_after(10):
                while b"\r\n\r\n" not in head and len(head) < _MAX_CALLBACK_REQUEST:
                    head += await stream.receive()
            status, body = self._take(head.split(b"\r\n", 1)[0].decode("latin-1"))
            page = f"<!doctype html><title>mcp-host</title><p>{body}</p>".encode()
            await stream.send(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
                + page
            )

    def _take(self, request_line: str) -> tuple[str, str]:
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        parts = urlsplit(target)
        if method != "GET" or parts.path != _CALLBACK_PATH:
            return "404 Not Found", "Not found."
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if self._done.is_set() or not self._state or params.get("state") != self._state:
            return "400 Bad Request", "This is not the login mcp-host is waiting for."
        self._params = params
        self._done.set()
        return "200 OK", "Logged in. You can close this tab and return to mcp-host."


__all__ = [
    "AuthConfig",
    "AuthorizationCodeResult",
    "LoginHandlers",
    "RemoteAuth",
    "StoredLogin",
    "TokenStore",
    "auth_for",
    "browser_login",
    "make_auth",
]
