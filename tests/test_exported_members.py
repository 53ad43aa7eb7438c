"""The public surface is deliberate: everything in `__all__` exists, and nothing public is left out."""

from __future__ import annotations

import pytest

import mcp_host
from tests.conftest import smollm2_path


def test_all_is_sorted_and_complete() -> None:
    assert mcp_host.__all__ == sorted(mcp_host.__all__)
    for name in mcp_host.__all__:
        assert hasattr(mcp_host, name), name
    public = {
        name
        for name in vars(mcp_host)
        if not name.startswith("_") and not isinstance(getattr(mcp_host, name), type(mcp_host))
    }
    assert public <= set(mcp_host.__all__), public - set(mcp_host.__all__)


def test_errors_share_one_root() -> None:
    for name in mcp_host.__all__:
        value = getattr(mcp_host, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, mcp_host.McpHostError), name


def test_every_error_is_exported() -> None:
    from mcp_host import errors

    public = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    assert public <= set(mcp_host.__all__), public - set(mcp_host.__all__)


def test_backends_and_their_options_are_exported() -> None:
    engines = {"LlamaCppBackend", "MlxBackend", "OpenAIChatBackend", "OpenAICompletionsBackend", "ReplayBackend"}
    interfaces = {"Backend", "ChatBackend", "RecordingBackend"}
    options = {"ChatOptions", "GenerationParams", "HarmonyOptions"}
    assert engines | interfaces | options <= set(mcp_host.__all__)


@pytest.mark.parametrize("resource", [mcp_host.Host, mcp_host.Chat])
def test_resources_close_with_async_with(resource: type) -> None:
    for method in ("__aenter__", "__aexit__", "aclose"):
        assert callable(getattr(resource, method, None)), f"{resource.__name__}.{method}"


@pytest.mark.parametrize(
    "backend",
    [
        mcp_host.LlamaCppBackend,
        mcp_host.MlxBackend,
        mcp_host.OpenAIChatBackend,
        mcp_host.OpenAICompletionsBackend,
        mcp_host.ReplayBackend,
        mcp_host.RecordingBackend,
    ],
)
def test_backends_close_with_async_with(backend: type) -> None:
    for method in ("__aenter__", "__aexit__", "aclose"):
        assert callable(getattr(backend, method, None)), f"{backend.__name__}.{method}"


@pytest.mark.anyio
async def test_a_backend_closes_at_the_end_of_its_block() -> None:
    async with mcp_host.LlamaCppBackend.load(smollm2_path(), context_length=256) as backend:
        assert backend.tokenize("hi", special=False)
    with pytest.raises(mcp_host.BackendError):  # closed: nothing can be generated any more
        async with backend.generate([1, 2], mcp_host.GenerationParams(max_tokens=1)) as generation:
            [token async for token in generation]
