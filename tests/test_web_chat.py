"""The web chat page of `mcp-host serve`, in a real browser (Debian's chromium, driven by Playwright).

Each test starts `mcp-host serve` as a user would, over the fixture MCP server, with a scripted gpt-oss
(`--replay`): a tool call approved from the page, a long answer stopped, model output and a tool result that
try to run script or load a remote image, and a server that needs an API key.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx2
from playwright.sync_api import Page, expect

from mcp_host.api.web_routes import ASSETS
from tests.conftest import ROOT, fixture_entry, free_port, wait_for_port, write_config
from tests.test_chat_terminal import write_recording
from tests.web_page import screenshot, served

CALL_ADD = (
    "<|channel|>analysis<|message|>Use the add tool.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>'
)
SUM = "<|channel|>final<|message|>The sum is 42.<|return|>"
LONG = "<|channel|>final<|message|>" + "This is a very long answer. " * 300 + "<|return|>"
BACK = "<|channel|>final<|message|>Back again.<|return|>"
HELLO = "<|channel|>final<|message|>Hello from the keyed server.<|return|>"
HOSTILE_HOST = "203.0.113.1"
XSS = (
    "<script>window.pwned=1</script>\n\n"
    '<img src=x onerror="window.pwned=1">\n\n'
    "[click me](javascript:window.pwned=1) and [the docs](https://example.com/docs)\n\n"
    f"![x](http://{HOSTILE_HOST}/x.png)"
)
CALL_ECHO = (
    "<|channel|>commentary to=functions.fx__echo <|constrain|>json<|message|>" + json.dumps({"text": XSS}) + "<|call|>"
)
XSS_ANSWER = "<|channel|>final<|message|>" + XSS + "<|return|>"
expect.set_options(timeout=15_000)

CSP_DIRECTIVES = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
]


def record_answer_lengths(page: Page) -> None:
    """Note each length the last answer's text has while it streams (in `window.answerLengths`)."""
    page.evaluate(
        """() => {
            window.answerLengths = [];
            new MutationObserver(() => {
                const answers = document.querySelectorAll('.answer');
                if (answers.length) window.answerLengths.push(answers[answers.length - 1].textContent.length);
            }).observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true});
        }"""
    )


def test_a_tool_call_approved_from_the_page_and_the_answer_streamed(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [CALL_ADD, SUM]) as url:
        page.goto(url)
        record_answer_lengths(page)
        box = page.locator("#message")
        box.fill("What is 20")
        box.press("Shift+Enter")  # a new line, not a message
        box.type("+ 22?")
        expect(box).to_have_value("What is 20\n+ 22?")
        expect(page.locator(".turn")).to_have_count(0)
        box.press("Enter")
        expect(page.locator(".turn.user")).to_have_text("What is 20\n+ 22?")
        card = page.locator(".tool-card")
        allow = card.get_by_role("button", name="Allow once")
        expect(allow).to_be_visible()
        expect(box).to_be_focused()  # focus stays in the message box: typing never answers the question
        box.type("and then ")
        expect(card.locator(".tool-decision")).to_have_count(0)  # still unanswered
        expect(box).to_have_value("and then ")
        box.fill("")
        expect(card.get_by_role("button", name="Always")).to_be_visible()
        expect(card.get_by_role("button", name="Deny")).to_be_visible()
        expect(card.locator(".tool-name")).to_have_text("fx.add")
        assert json.loads(card.locator(".tool-arguments").text_content() or "") == {"a": 20, "b": 22}
        expect(page.locator("details.reasoning").first).to_contain_text("Use the add tool.")
        screenshot(page, "web-chat-approval.png")  # for the README: a call awaiting approval
        allow.focus()  # Tab reaches the buttons; Enter answers
        page.keyboard.press("Enter")  # Allow once, from the keyboard
        expect(card.locator(".tool-result")).to_have_text("42")
        expect(card.locator(".tool-decision")).to_have_text("Allowed once")
        expect(card.locator(".tool-duration")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
        expect(page.locator(".answer")).to_have_text("The sum is 42.")
        lengths = page.evaluate("window.answerLengths")
        assert len({n for n in lengths if 0 < n < len("The sum is 42.")}) >= 2, lengths  # it arrived in pieces
        expect(page.locator("#send")).to_be_visible()
        expect(page.locator("#stop")).to_be_hidden()


def test_stop_cancels_a_long_answer_and_the_page_can_send_again(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [LONG, BACK], speed=40) as url:  # about a minute of answer unless stopped
        page.goto(url)
        page.locator("#message").fill("Talk for a while.")
        page.locator("#message").press("Enter")
        expect(page.locator(".answer")).to_contain_text("This is a very long answer.")
        page.locator("#message").type("so what")  # typing the next message while it streams stops nothing
        expect(page.locator("#message")).to_have_value("so what")
        expect(page.locator(".note.stopped")).to_have_count(0)
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        page.keyboard.press("Escape")  # Esc stops, as the Stop button does
        expect(page.locator(".note.stopped")).to_have_text("Stopped.")
        expect(page.locator("#send")).to_be_visible()
        expect(page.locator("#stop")).to_be_hidden()
        stopped_at = len(page.locator(".answer").text_content() or "")
        assert stopped_at < len("This is a very long answer. " * 300) // 2
        page.locator("#message").fill("Again?")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".answer").nth(1)).to_have_text("Back again.")
        assert len(page.locator(".answer").first.text_content() or "") == stopped_at  # the first turn stayed stopped


def test_a_question_left_open_when_the_turn_stops_cannot_be_answered_any_more(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [CALL_ADD, SUM]) as url:
        page.goto(url)
        page.locator("#message").fill("What is 20 + 22?")
        page.locator("#message").press("Enter")
        card = page.locator(".tool-card")
        expect(card.get_by_role("button", name="Allow once")).to_be_visible()
        expect(page.locator("#status")).to_contain_text("fx.add needs your approval")
        page.keyboard.press("Escape")
        expect(card.locator(".tool-decision")).to_have_text("Not run: the turn ended before an answer.")
        expect(card.get_by_role("button")).to_have_count(0)
        expect(card.locator(".tool-state")).to_have_text("not run")


def test_model_output_and_tool_results_never_run_script_or_load_remote_images(tmp_path: Path, page: Page) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    with served(tmp_path, [CALL_ECHO, XSS_ANSWER], speed=400) as url:
        response = page.goto(url)
        assert response is not None and response.ok
        headers = response.headers
        for directive in CSP_DIRECTIVES:
            assert directive in headers["content-security-policy"], directive
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
        for asset in ("app.js", "app.css"):
            served_asset = httpx2.get(f"{url}/web/{asset}", timeout=10)
            assert (
                served_asset.status_code == 200
                and "script-src 'self'" in served_asset.headers["content-security-policy"]
            )
            assert served_asset.headers["x-content-type-options"] == "nosniff"
        for name in ("__init__.py", "..%2Fapi%2Fapp.py", "missing.js"):
            assert httpx2.get(f"{url}/web/{name}", timeout=10).status_code == 404, name

        page.locator("#message").fill("Echo something nasty.")
        page.locator("#message").press("Enter")
        card = page.locator(".tool-card")
        expect(card.locator(".tool-name")).to_have_text("fx.echo")
        card.get_by_role("button", name="Allow once").click()
        expect(card.locator(".tool-result")).to_have_text(XSS)  # shown as text
        answer = page.locator(".answer")
        expect(answer).to_contain_text("<script>window.pwned=1</script>")
        expect(answer).to_contain_text('<img src=x onerror="window.pwned=1">')
        expect(answer).to_contain_text("[click me](javascript:window.pwned=1)")
        expect(page.locator(".note.stats")).to_be_visible()  # the turn completed

        assert page.evaluate("typeof window.pwned") == "undefined"
        expect(page.locator("img")).to_have_count(0)
        scripts = page.locator("script")
        expect(scripts).to_have_count(1)
        assert scripts.get_attribute("src") == "/web/app.js"
        expect(page.locator("a[href^='javascript']")).to_have_count(0)
        docs = answer.get_by_role("link", name="the docs")
        expect(docs).to_have_attribute("href", "https://example.com/docs")
        expect(docs).to_have_attribute("rel", "noopener noreferrer")
        image = answer.get_by_role("link", name="image: x")  # a link the user may follow, never loaded
        expect(image).to_have_attribute("href", f"http://{HOSTILE_HOST}/x.png")
    assert not [seen for seen in requests if HOSTILE_HOST in seen], requests
    assert all(seen.startswith(url) or seen.startswith("data:") for seen in requests), requests


def test_a_server_with_an_api_key_asks_for_it_once(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [HELLO], api_key="s3cret-key") as url:
        assert httpx2.get(f"{url}/v1/models", timeout=10).status_code == 401  # the API still needs the key
        assert httpx2.post(f"{url}/", json={}, timeout=10).status_code == 401  # only reading the page is open
        assert httpx2.get(f"{url}/web/__init__.py", timeout=10).status_code == 401
        page.goto(url)
        form = page.locator("#key-form")
        expect(form).to_be_visible()
        key = page.get_by_label("This server needs its API key")
        expect(key).to_be_focused()
        key.fill("wrong")
        key.press("Enter")
        expect(page.locator("#key-error")).to_have_text("The server refused this key.")
        key.fill("s3cret-key")
        page.get_by_role("button", name="Use key").click()
        expect(form).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('mcp-host-api-key')") == "s3cret-key"
        expect(page.locator("#chats-error")).to_be_hidden()  # what the refused requests missed is read again
        expect(page.locator("#chats-list")).to_contain_text("No chats yet.")
        page.locator("#message").fill("Hello?")
        page.locator("#message").press("Enter")
        expect(page.locator(".answer")).to_have_text("Hello from the keyed server.")
        with page.expect_response(f"{url}/v1/models") as probe:
            page.reload()  # kept for the tab: not asked again
        assert probe.value.status == 200
        expect(form).to_be_hidden()
        expect(page.locator("#message")).to_be_focused()


def test_every_asset_ships_in_the_package_data() -> None:
    """A non-editable install has the page: each served file matches a package-data pattern of `mcp_host.web`."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "mcp_host.web"
    ]
    for name in ASSETS:
        assert (ROOT / "mcp_host" / "web" / name).is_file(), name
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_chat_web_serves_the_page_and_opens_it_in_the_users_browser(tmp_path: Path, page: Page) -> None:
    """`mcp-host chat --web`: the web chat on 127.0.0.1, opened with `$BROWSER`; the page answers there."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    script = f"import pathlib, sys\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    browser.write_text(f"#!{sys.executable}\n{script}")
    browser.chmod(0o755)
    config = write_config(tmp_path / "mcp.json", {"fx": fixture_entry()})
    recording = tmp_path / "chat.jsonl"
    write_recording(recording, [BACK])
    port = free_port()
    command = [sys.executable, "-m", "mcp_host.cli", "--config", str(config), "--settings", str(tmp_path / "s.toml")]
    env = {**os.environ, "BROWSER": str(browser), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MCP_HOST_API_KEY", None)
    refused = subprocess.run([*command, "chat", "--web", "--python"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "--python: not with --web" in refused.stderr
    output = (tmp_path / "chat.txt").open("wb")
    process = subprocess.Popen(
        [*command, "chat", "--web", "--port", str(port), "--replay", str(recording)],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port, process, limit_s=60)
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text() == f"http://127.0.0.1:{port}/"
        page.goto(opened.read_text())
        page.locator("#message").fill("Hello?")
        page.locator("#message").press("Enter")
        expect(page.locator(".answer")).to_have_text("Back again.")
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops it, as it stops `serve`
        code = process.wait(timeout=20)
        output.close()
    assert code == 0, (tmp_path / "chat.txt").read_text()


def test_a_servers_question_is_a_form_built_from_its_schema(tmp_path: Path, page: Page) -> None:
    ask = "<|channel|>commentary to=functions.fx__ask_name <|constrain|>json<|message|>{}<|call|>"
    with served(tmp_path, [ask, "<|channel|>final<|message|>Nice to meet you.<|return|>"]) as url:
        page.goto(url)
        page.locator("#message").fill("Ask my name.")
        page.locator("#message").press("Enter")
        page.locator(".tool-card").get_by_role("button", name="Allow once").click()
        form = page.locator(".elicitation-form")
        expect(page.locator(".note.elicitation")).to_contain_text("fx asks: What is your name?")
        field = form.locator("input[name=name]")
        expect(field).to_have_value("Ada")  # the schema's default
        expect(form).to_contain_text("Your name")  # its description
        field.fill("Grace <b>Hopper</b>")
        form.get_by_role("button", name="Send").click()
        expect(form).to_have_text("Answered: sent.")
        expect(page.locator(".tool-card .tool-result")).to_have_text("accept: Grace <b>Hopper</b>")
        expect(page.locator(".answer")).to_have_text("Nice to meet you.")
        assert page.locator(".tool-card b").count() == 0


def test_arguments_edited_as_json_and_a_denial_with_its_reason(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [CALL_ADD, SUM, CALL_ADD, BACK]) as url:
        page.goto(url)
        page.locator("#message").fill("What is 20 + 22?")
        page.locator("#message").press("Enter")
        card = page.locator(".tool-card").first
        card.get_by_role("button", name="Edit…").click()
        editor = card.locator("textarea.arguments-editor")
        assert json.loads(editor.input_value()) == {"a": 20, "b": 22}
        editor.fill("{not json")
        card.get_by_role("button", name="Allow with these arguments").click()
        expect(card.locator(".edit-arguments .error")).to_contain_text("Not JSON")
        editor.fill("[1, 2]")
        card.get_by_role("button", name="Allow with these arguments").click()
        expect(card.locator(".edit-arguments .error")).to_have_text("The arguments must be a JSON object.")
        editor.fill('{"a": 1, "b": 2}')
        card.get_by_role("button", name="Allow with these arguments").click()
        expect(card.locator(".tool-decision")).to_have_text("Allowed with edited arguments")
        expect(card.locator(".tool-result")).to_have_text("3")
        expect(page.locator(".note.stats").first).to_contain_text("first token after")

        page.locator("#message").fill("And again?")
        page.locator("#message").press("Enter")
        second = page.locator(".tool-card").nth(1)
        second.locator("input.deny-reason").fill("not now, thanks")
        second.get_by_role("button", name="Deny").click()
        expect(second.locator(".tool-decision")).to_have_text("Denied")
        expect(second.locator(".tool-result")).to_contain_text("not now, thanks")
        expect(page.locator(".answer").nth(1)).to_have_text("Back again.")


def test_the_servers_panel_shows_each_server_and_restarts_one(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [SUM]) as url:
        before = httpx2.get(f"{url}/v1/servers").json()["data"][0]
        page.goto(url)
        toggle = page.get_by_role("button", name="Servers")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        item = page.locator("#servers-list li.server")
        expect(item).to_have_count(1)
        expect(item.locator(".server-name")).to_have_text("fx")
        expect(item.locator(".server-state")).to_have_text("ready")
        expect(item).to_contain_text(f"stdio · {before['tools']} tools")
        item.locator("summary").click()
        screenshot(page, "web-chat-servers.png")  # for the README: the servers panel
        expect(item.locator(".server-tools")).to_contain_text("fx.add")
        item.get_by_role("button", name="Restart fx").click()
        expect(page.locator("#servers-list li.server .server-state")).to_have_text("ready")
        after = httpx2.get(f"{url}/v1/servers").json()["data"][0]
        assert after["state"] == "ready" and after["pid"] != before["pid"]
        expect(page.locator("#servers-error")).to_be_hidden()


def test_options_for_new_chats_go_with_the_session_they_open(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [BACK]) as url:
        models = httpx2.get(f"{url}/v1/models").json()["data"]
        sent: list[object] = []
        page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/sessions") else None)
        page.goto(url)
        page.get_by_role("button", name="Options").click()
        model = page.locator("#option-model")
        expect(model.locator(f"option[value='{models[0]['id']}']")).to_have_count(1)
        model.select_option(models[0]["id"])
        page.locator("#option-reasoning").select_option("high")
        page.get_by_role("button", name="Tools").click()
        page.locator("input[data-tool='native:python']").check()
        expect(page.locator("#tools-budget")).to_contain_text("tokens")
        page.locator("#message").fill("Hello?")
        page.locator("#message").press("Enter")
        expect(page.locator(".answer")).to_have_text("Back again.")
        assert sent == [{"model": models[0]["id"], "reasoning_effort": "high", "python": True}]


def test_a_reload_finds_the_chat_still_there(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [CALL_ADD, SUM, BACK]) as url:
        page.goto(url)
        page.locator("#message").fill("What is 20 + 22?")
        page.locator("#message").press("Enter")
        page.locator(".tool-card").get_by_role("button", name="Allow once").click()
        expect(page.locator(".answer")).to_have_text("The sum is 42.")
        page.reload()
        expect(page.locator(".turn.user")).to_have_text("What is 20 + 22?")
        card = page.locator(".tool-card")
        expect(card.locator(".tool-name")).to_have_text("fx.add")
        expect(card.locator(".tool-result")).to_have_text("42")
        expect(page.locator(".answer")).to_have_text("The sum is 42.")
        page.locator("#message").fill("Thanks!")  # the same session goes on
        page.locator("#message").press("Enter")
        expect(page.locator(".answer").nth(1)).to_have_text("Back again.")
        page.get_by_role("button", name="New chat").click()
        page.reload()
        expect(page.locator(".turn")).to_have_count(0)
