"""Every model the server can use: the one it started with and every GGUF on disk, loaded just in time.

    async with ModelRegistry(discover=lambda: discover_models(paths), preloaded=backend, resident=1) as models:
        async with models.use("google/gemma-3-270m", progress=on_load) as backend:   # loads it if needed
            ...
        for model in models.listing(): print(model.id, model.state)
        for load in models.loading(): print(load.model, load.progress)   # cheap: no disk read

A request that names a model not loaded loads it (`on_load` receives `LoadStarted`, `LoadProgress`,
`LoadFinished`); requests for a model being loaded wait for that load. At most `resident` models stay
loaded: the one idle longest is unloaded to make room, and a request waits while every loaded model is
busy. A model loaded just in time is unloaded after `idle_ttl_s` without use. A backend that is not a file
(a replayed recording, a model behind another server) is always loaded and never counts or is unloaded.
Raises `ModelNotFoundError` (a name nothing matches, listing what exists) and what loading raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import AsyncResource, TaskGroup

from mcp_host.backends.base import Backend, Embedder, ModelNotFoundError, UnsupportedFeatureError
from mcp_host.backends.listing import ModelListing, describe_model
from mcp_host.backends.loading import (
    LoadedModel,
    Loader,
    Loading,
    LoadOptions,
    LoadStarted,
    OnLoad,
    load_with_llama_cpp,
    run_load,
)
from mcp_host.backends.models import FoundModel
from mcp_host.errors import ModelLoadError


class Lease:
    """A model in use: not unloaded until `release()` (idempotent; may be called from any task)."""

    def __init__(self, backend: LoadedModel, release: Callable[[], Awaitable[None]]) -> None:
        self.backend = backend
        self._release: Callable[[], Awaitable[None]] | None = release

    async def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            with anyio.CancelScope(shield=True):
                await release()


@dataclass
class _Slot:
    """One model loaded or loading."""

    key: str
    model: str
    path: Path | None
    options: LoadOptions
    backend: LoadedModel | None = None
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    ttl_s: float | None = None
    progress: float = 0.0
    started: float = field(default_factory=time.monotonic)
    failed: BaseException | None = None
    owned: bool = True  # loaded here, so closed here

    @property
    def evictable(self) -> bool:
        return self.path is not None and self.owned


class ModelRegistry(AsyncResource):
    """The models of one server; an async resource (`async with`) that unloads idle models in the background."""

    def __init__(
        self,
        *,
        discover: Callable[[], Sequence[FoundModel]],
        preloaded: LoadedModel | None = None,
        preloaded_path: Path | None = None,
        own_preloaded: bool = False,
        loader: Loader = load_with_llama_cpp,
        resident: int = 1,
        idle_ttl_s: float | None = 3600.0,
    ) -> None:
        self._discover = discover
        self._loader = loader
        self.resident = max(1, resident)
        self.idle_ttl_s = idle_ttl_s
        self._slots: dict[str, _Slot] = {}
        self._changed = anyio.Condition()
        self._tasks: TaskGroup | None = None
        self._stack = AsyncExitStack()
        self.default: str | None = None
        if preloaded is not None:
            key = _embedding_key(preloaded.name) if _embeds(preloaded) else preloaded.name
            self._slots[key] = _Slot(
                key, preloaded.name, preloaded_path, LoadOptions(), backend=preloaded, owned=own_preloaded
            )
            self.default = preloaded.name

    async def __aenter__(self) -> ModelRegistry:
        self._tasks = await self._stack.enter_async_context(anyio.create_task_group())
        self._tasks.start_soon(self._evict_idle)
        return self

    async def aclose(self) -> None:
        """Stop the eviction task and unload every model it loaded (and the preloaded one if owned). Idempotent."""
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
            self._tasks = None
        await self._stack.aclose()
        with anyio.CancelScope(shield=True):
            slots, self._slots = list(self._slots.values()), {}
            for slot in slots:
                if slot.backend is not None and slot.owned:
                    await slot.backend.aclose()

    # -- what there is --------------------------------------------------------------------------

    def found(self) -> list[FoundModel]:
        return list(self._discover())

    def listing(self) -> list[ModelListing]:
        """Every model: the loaded ones first (in load order), then the rest found on disk."""
        rows: list[ModelListing] = []
        seen: set[Path] = set()
        for slot in self._slots.values():
            if slot.backend is None:
                continue
            if slot.path is not None:
                seen.add(slot.path.resolve())
            rows.append(describe_model(slot.backend.name, slot.path, slot.backend))
        for model in self.found():
            if model.path.resolve() not in seen:
                seen.add(model.path.resolve())
                rows.append(describe_model(model.id, model.path, None))
        return rows

    def loaded(self) -> list[tuple[str, LoadedModel]]:
        """(instance id, backend) of every loaded model."""
        return [(slot.key, slot.backend) for slot in self._slots.values() if slot.backend is not None]

    def loading(self) -> list[Loading]:
        """Every model being loaded now, oldest load first. Reads nothing from disk, so it is cheap to poll.

        A load is listed from the moment it is asked for (unloading a model to make room counts) until the model
        is loaded or the load failed.
        """
        now = time.monotonic()
        return [
            Loading(slot.model, slot.key, slot.progress, now - slot.started)
            for slot in self._slots.values()
            if slot.backend is None
        ]

    def resolve(self, name: str | None) -> tuple[str, Path | None]:
        """The model a request means: (its id, its file; None for a backend that is not a file).

        No name (or an empty one) means the default model. Raises `ModelNotFoundError`.
        """
        if not name:
            if self.default is not None:
                return self._resolve_loaded(self.default) or (self.default, None)
            name = self._first_found_name()
        loaded = [(slot.backend.name, slot.path) for slot in self._slots.values() if slot.backend is not None]
        wanted = _normal(name)
        # A backend serving another server's model (`openai-chat:gemma`) answers to that model's name too.
        exact = [entry for entry in loaded if wanted in (_normal(entry[0]), _served(entry[0]))]
        if exact:
            return exact[0]
        found = self.found()
        by_id = [model for model in found if _normal(model.id) == wanted or str(model.path) == name]
        by_repo = [model for model in found if _last(model.id) == _last(name)]
        for hits in (by_id, by_repo):
            if hits:
                path = hits[0].path.resolve()
                same_file = [entry for entry in loaded if entry[1] is not None and entry[1].resolve() == path]
                return same_file[0] if same_file else (hits[0].id, hits[0].path)
        # A unique prefix of a loaded model's name also names it (`gemma` for `gemma-3-270m-it-Q4_K_M`).
        prefixed = [entry for entry in loaded if _last(entry[0]).startswith(_last(name))]
        if len(prefixed) == 1:
            return prefixed[0]
        listing = ", ".join(sorted({row.id for row in self.listing()})) or "none"
        raise ModelNotFoundError(f"no model {name!r} (models here: {listing})")

    def _resolve_loaded(self, name: str) -> tuple[str, Path | None] | None:
        for slot in self._slots.values():
            if slot.backend is not None and _normal(slot.backend.name) == _normal(name):
                return slot.backend.name, slot.path
        return None

    def _first_found_name(self) -> str:
        found = self.found()
        if not found:
            raise ModelNotFoundError("no model is loaded and none was found on disk")
        return found[0].id

    # -- using a model ---------------------------------------------------------------------------

    async def acquire(
        self, name: str | None, *, progress: OnLoad | None = None, context_length: int | None = None
    ) -> Lease:
        """The named model for generation, loaded first if need be, kept loaded until the lease is released."""
        model, path = self.resolve(name)
        slot = await self._acquire(model, path, LoadOptions(context_length=context_length), progress, ttl=True)
        assert slot.backend is not None
        return Lease(slot.backend, lambda: self._release(slot))

    @asynccontextmanager
    async def use(
        self, name: str | None, *, progress: OnLoad | None = None, context_length: int | None = None
    ) -> AsyncIterator[LoadedModel]:
        """`acquire` for the length of a block."""
        lease = await self.acquire(name, progress=progress, context_length=context_length)
        try:
            yield lease.backend
        finally:
            await lease.release()

    @asynccontextmanager
    async def embedder(self, name: str | None, *, progress: OnLoad | None = None) -> AsyncIterator[Embedder]:
        """The named model loaded for embeddings (its own instance). Raises `UnsupportedFeatureError`."""
        model, path = self.resolve(name)
        preloaded = self._slots.get(_embedding_key(model))
        if path is None and preloaded is None:
            raise UnsupportedFeatureError(f"{model} cannot embed: it is not a model file this server loads")
        slot = await self._acquire(model, path, LoadOptions(embedding=True), progress, ttl=True)
        try:
            backend = slot.backend
            if not isinstance(backend, Embedder) or not _embeds(backend):
                raise UnsupportedFeatureError(f"{model} cannot embed")
            yield backend
        finally:
            await self._release(slot)

    async def load(self, name: str, *, context_length: int | None = None, ttl_s: float | None = None) -> str:
        """Load a model now (kept until unloaded, or idle for `ttl_s`); its instance id."""
        model, path = self.resolve(name)
        slot = await self._acquire(model, path, LoadOptions(context_length=context_length), None, ttl=False)
        slot.ttl_s = ttl_s
        await self._release(slot)
        return slot.key

    async def unload(self, instance_id: str) -> bool:
        """Unload an instance once nobody uses it. False when no such instance is loaded.

        Raises `UnsupportedFeatureError` for the model the registry was given loaded (it is no file here, so
        nothing could load it again: unloading it would leave the server without a model until a restart).
        """
        async with self._changed:
            slot = self._slots.get(instance_id)
            if slot is None or slot.backend is None:
                return False
            if slot.path is None:
                raise UnsupportedFeatureError(
                    f"{instance_id!r} was loaded when the server started and cannot be loaded again: it stays"
                )
            while slot.users:
                await self._changed.wait()
            if self._slots.get(instance_id) is not slot:
                return False
            del self._slots[instance_id]
            self._changed.notify_all()
        if slot.owned:
            with anyio.CancelScope(shield=True):
                assert slot.backend is not None
                await slot.backend.aclose()
        return True

    async def _acquire(
        self, model: str, path: Path | None, options: LoadOptions, progress: OnLoad | None, *, ttl: bool
    ) -> _Slot:
        key = _embedding_key(model) if options.embedding else model
        announced = progress is None
        while True:
            async with self._changed:
                slot = self._slots.get(key)
                if slot is not None and slot.backend is not None:
                    slot.users += 1
                    return slot
                if slot is not None and announced:  # being loaded by another request: wait for that load
                    await self._changed.wait()
                    if slot.failed is not None:
                        raise slot.failed
                    continue
                if slot is None:
                    if path is None:
                        raise ModelNotFoundError(f"{model} is not loaded and is not a file this server can load")
                    victims = self._make_room()
                    if victims is None:  # every loaded model in the way is busy: wait for one to be free
                        await self._changed.wait()
                        continue
                    slot = _Slot(key, model, path, options, users=1, ttl_s=self.idle_ttl_s if ttl else None)
                    self._slots[key] = slot
                    break
            # Said outside the lock: a slow client must not hold up the registry.
            assert progress is not None
            await progress(LoadStarted(model))
            announced = True
        try:
            with anyio.CancelScope(shield=True):
                for victim in victims:
                    assert victim.backend is not None
                    await victim.backend.aclose()
            await run_load(self._loader, slot, progress)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    if slot.backend is not None:  # loaded; only the request went away: the model stays
                        slot.users -= 1
                    else:
                        slot.failed = exc if isinstance(exc, Exception) else ModelLoadError(f"loading {model} stopped")
                        self._slots.pop(key, None)
                    self._changed.notify_all()
            raise
        async with self._changed:
            self._changed.notify_all()
        return slot

    def _make_room(self) -> list[_Slot] | None:
        """The idle models to unload so that one more fits; None when every model in the way is busy."""
        counted = [slot for slot in self._slots.values() if slot.evictable]
        excess = len(counted) + 1 - self.resident
        if excess <= 0:
            return []
        idle = sorted((s for s in counted if s.users == 0 and s.backend is not None), key=lambda s: s.last_used)
        if len(idle) < excess:
            return None
        victims = idle[:excess]
        for victim in victims:
            del self._slots[victim.key]
        return victims

    async def _release(self, slot: _Slot) -> None:
        async with self._changed:
            slot.users -= 1
            slot.last_used = time.monotonic()
            self._changed.notify_all()

    async def _evict_idle(self) -> None:
        while True:
            now = time.monotonic()
            expired = [
                slot
                for slot in self._slots.values()
                if slot.evictable
                and slot.backend is not None
                and slot.users == 0
                and slot.ttl_s is not None
                and now - slot.last_used >= slot.ttl_s
            ]
            for slot in expired:
                async with self._changed:
                    if self._slots.get(slot.key) is slot and slot.users == 0:
                        del self._slots[slot.key]
                        self._changed.notify_all()
                    else:
                        continue
                with anyio.CancelScope(shield=True):
                    assert slot.backend is not None
                    await slot.backend.aclose()
            ttls = [slot.ttl_s for slot in self._slots.values() if slot.ttl_s is not None]
            if self.idle_ttl_s is not None:
                ttls.append(self.idle_ttl_s)  # a model loaded meanwhile is checked in time too
            await anyio.sleep(min(max(min(ttls, default=math.inf) / 4, 0.05), 5.0))


def _embedding_key(model: str) -> str:
    return f"{model}:embedding"


def _embeds(backend: LoadedModel) -> bool:
    return isinstance(backend, Backend) and isinstance(backend, Embedder) and backend.capabilities.embeddings


def _normal(name: str) -> str:
    return name.lower().removesuffix("-gguf")


SERVER_PROXIES = ("openai-chat", "openai-completions")  # `mcp_host.backends.openai_http`'s names: `<engine>:<model>`


def _served(name: str) -> str:
    """The model name a server-proxy backend's name carries (`gemma` in `openai-chat:gemma`), else ''."""
    engine, _, model = name.partition(":")
    return _normal(model) if engine in SERVER_PROXIES and model else ""


def _last(name: str) -> str:
    return _normal(name).split("/")[-1]
