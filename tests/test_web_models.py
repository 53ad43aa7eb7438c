"""The web chat with real models, in a real browser (Debian's chromium, driven by Playwright): the model picker lists
the GGUF files on disk and shows a load's progress (llama.cpp's own load, held midway on a gate so that the page is
seen while it loads), and the real gemma model answers a message typed in the page."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
from playwright.sync_api import Page, expect

from mcp_host.backends.models import discover_models
from mcp_host.backends.registry import ModelRegistry
from tests.test_model_load_progress import GEMMA, SMOL, GatedLoader
from tests.web_page import served_in_thread

expect.set_options(timeout=15_000)


def test_the_picker_lists_models_on_disk_and_shows_a_load_in_progress(
    tmp_path: Path, lmstudio_models: Path, page: Page
) -> None:
    loader = GatedLoader()
    try:
        with served_in_thread(tmp_path, ModelRegistry(discover=discover_models, loader=loader)) as url:
            page.goto(url)
            page.get_by_role("button", name="Options").click()
            picker = page.locator("#option-model")
            expect(picker.locator(f"option[value='{GEMMA}']")).to_contain_text("gemma3")  # what the file says it is
            expect(picker.locator(f"option[value='{SMOL}']")).to_contain_text("llama")
            expect(picker.locator(f"option[value='{GEMMA}']")).not_to_contain_text("loaded")
            picker.select_option(GEMMA)
            expect(page.locator("#model-facts")).to_contain_text("context up to 32768 tokens")
            page.get_by_role("button", name="Load now").click()
            assert loader.paused.wait(60), "the load never started"
            assert loader.paused_at is not None
            label = page.locator("#model-loading-label")
            expect(label).to_have_text(f"Loading {GEMMA}: {round(100 * loader.paused_at)}%")
            bar = page.locator("#model-loading-bar")
            assert abs(float(bar.evaluate("node => node.value")) - loader.paused_at) < 1e-3
            loader.gate.set()
            expect(page.locator("#model-loading")).to_be_hidden()
            expect(page.locator("#status")).to_contain_text(f"Loaded {GEMMA} in")
            expect(picker.locator(f"option[value='{GEMMA}']")).to_contain_text("loaded")
            expect(page.get_by_role("button", name="Load now")).to_be_hidden()
    finally:
        loader.gate.set()


def test_the_real_gemma_model_answers_through_the_page(tmp_path: Path, lmstudio_models: Path, page: Page) -> None:
    opened: list[object] = []
    page.on("request", lambda r: opened.append(r.post_data_json) if r.url.endswith("/v1/sessions") else None)
    with served_in_thread(tmp_path, ModelRegistry(discover=discover_models)) as url:
        page.goto(url)
        page.get_by_role("button", name="Options").click()
        page.locator("#option-model").select_option(GEMMA)
        page.locator("#option-max-tokens").fill("12")  # bounded: a base model goes on until stopped
        page.locator("#message").fill("The capital of France is")
        page.locator("#message").press("Enter")
        stats = page.locator(".note.stats")
        expect(stats).to_be_visible(timeout=120_000)  # loading the model, then at most 12 tokens
        answer = page.locator(".turn.assistant").first
        assert (answer.text_content() or "").strip()
        generated = re.search(r"(\d+) tokens · ", stats.text_content() or "")
        assert generated and 0 < int(generated.group(1)) <= 12, stats.text_content()
        expect(page.locator(".note.error")).to_have_count(0)
        assert opened == [{"model": GEMMA, "max_tokens": 12}]
        listed = httpx2.get(f"{url}/v1/sessions").json()["data"]
        assert [(chat["title"], chat["model"]) for chat in listed] == [("The capital of France is", GEMMA)]
