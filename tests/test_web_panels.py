"""The web chat's panels in a real browser (Debian's chromium, driven by Playwright) against `mcp-host serve`:
the mcp.json editor (an error shown at its line and key, nothing saved, then fixed and applied live), the list of
stored chats (open, rename, search, delete), the tools of a chat (switches and their context budget) and the model
picker."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx2
from playwright.sync_api import Browser, Page, expect

from tests.conftest import everything_command, fixture_entry, free_port
from tests.test_api_server_features import ARCHITECTURE
from tests.web_page import screenshot, served

BACK = "<|channel|>final<|message|>Back again.<|return|>"
SUM = "<|channel|>final<|message|>The sum is 42.<|return|>"
CALL_ADD = (
    "<|channel|>analysis<|message|>Use the add tool.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.fx__add <|constrain|>json<|message|>{"a": 20, "b": 22}<|call|>'
)
expect.set_options(timeout=15_000)


def say(page: Page, text: str) -> None:
    page.locator("#message").fill(text)
    page.locator("#message").press("Enter")


def test_mcp_json_edited_with_an_error_then_fixed_and_applied_live(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [BACK]) as url:
        path = tmp_path / "mcp.json"
        page.goto(url)
        page.get_by_role("button", name="mcp.json").click()
        editor = page.locator("#config-text")
        expect(editor).to_have_value(path.read_text())
        expect(page.locator("#config-path")).to_have_text(str(path))
        before = path.read_bytes()

        servers = {"fx": fixture_entry(), "fx2": {**fixture_entry(), "args": "not-a-list"}}
        broken = json.dumps({"mcpServers": servers}, indent=2)
        editor.fill(broken)
        problem = page.locator("#config-errors .config-error")
        expect(problem).to_contain_text('server "fx2"')  # checked as typed, with the CLI's own message
        expect(problem).to_contain_text('key "args"')
        line = broken.splitlines().index(next(x for x in broken.splitlines() if '"args": "not-a-list"' in x)) + 1
        expect(problem).to_contain_text(f"line {line}")
        expect(editor).to_have_attribute("aria-invalid", "true")
        problem.get_by_role("button").click()  # puts the cursor on that line
        selected = page.evaluate(
            "() => { const t = document.getElementById('config-text');"
            " return t.value.slice(t.selectionStart, t.selectionEnd); }"
        )
        assert '"args": "not-a-list"' in selected
        page.get_by_role("button", name="Save and apply").click()
        expect(page.locator("#config-outcome")).to_contain_text("Not saved")
        assert path.read_bytes() == before

        servers["fx2"] = fixture_entry()
        editor.fill(json.dumps({"mcpServers": servers}, indent=2))
        expect(page.locator("#config-errors")).to_be_hidden()
        editor.press("Control+s")  # the keyboard saves too
        expect(page.locator("#config-outcome")).to_contain_text("Saved and applied: started fx2")
        assert json.loads(path.read_text())["mcpServers"]["fx2"] == fixture_entry()
        assert path.stat().st_mode & 0o777 == 0o600

        page.get_by_role("button", name="Servers").click()
        item = page.locator("#servers-list li.server[data-server='fx2']")
        expect(item.locator(".server-state")).to_have_text("ready", timeout=30_000)


def test_a_stale_editor_never_overwrites_the_file(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [BACK]) as url:
        path = tmp_path / "mcp.json"
        page.goto(url)
        page.get_by_role("button", name="mcp.json").click()
        expect(page.locator("#config-text")).to_have_value(path.read_text())
        elsewhere = json.dumps({"mcpServers": {"fx": fixture_entry(), "other": fixture_entry()}}, indent=2)
        path.write_text(elsewhere)  # another editor saved in between
        page.locator("#config-text").fill(json.dumps({"mcpServers": {}}, indent=2))
        page.get_by_role("button", name="Save and apply").click()
        expect(page.locator("#config-outcome")).to_contain_text("changed on disk")
        assert path.read_text() == elsewhere
        page.get_by_role("button", name="Reload from disk").click()
        expect(page.locator("#config-text")).to_have_value(elsewhere)


def test_stored_chats_are_listed_opened_renamed_searched_and_deleted(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [CALL_ADD, SUM, BACK, BACK]) as url:
        page.goto(url)
        say(page, "What is 20 + 22?")
        page.locator(".tool-card").get_by_role("button", name="Allow once").click()
        expect(page.locator(".answer")).to_have_text("The sum is 42.")
        chats = page.locator("#chats-list li.chat-item")
        expect(chats).to_have_count(1)
        expect(chats.first.locator(".chat-title")).to_have_text("What is 20 + 22?")

        page.get_by_role("button", name="New chat").click()
        say(page, "Tell me about penguins")
        expect(page.locator(".answer")).to_have_text("Back again.")
        expect(chats).to_have_count(2)
        expect(chats.first.locator(".chat-title")).to_have_text("Tell me about penguins")  # newest first
        expect(chats.first).to_have_attribute("aria-current", "true")

        # Opening the first chat shows its turns, tool card included, and the next message goes on with it.
        chats.nth(1).locator(".chat-open").click()
        expect(page.locator(".turn.user")).to_have_text("What is 20 + 22?")
        expect(page.locator(".tool-card .tool-result")).to_have_text("42")
        say(page, "Thanks!")
        expect(page.locator(".answer").nth(1)).to_have_text("Back again.")

        # Rename from the list (Escape cancels, Enter saves).
        first = page.locator("#chats-list li.chat-item", has_text="What is 20 + 22?")
        first.get_by_role("button", name="Rename").click()
        page.keyboard.press("Escape")
        expect(first.locator(".chat-title")).to_have_text("What is 20 + 22?")
        first.get_by_role("button", name="Rename").click()
        page.get_by_label("New title for What is 20 + 22?").fill("Sums")
        page.keyboard.press("Enter")
        expect(page.locator("#chats-list .chat-title", has_text="Sums")).to_have_count(1)
        renamed = page.locator("#chats-list li.chat-item", has_text="Sums")
        expect(renamed.locator(".chat-open")).to_be_focused()  # the keyboard keeps its place

        # Search finds words inside a chat, not only in its title.
        page.locator("#chats-search").fill("thanks")
        expect(chats).to_have_count(1)
        expect(chats.first.locator(".chat-title")).to_have_text("Sums")
        page.locator("#chats-search").fill("no chat says this")
        expect(chats).to_have_count(0)
        expect(page.locator("#chats-list")).to_contain_text("No chat says that.")
        page.locator("#chats-search").fill("")
        expect(chats).to_have_count(2)
        screenshot(page, "web-chat-chats.png")

        # Delete asks once more on the button; deleting the chat shown empties the page.
        sums = page.locator("#chats-list li.chat-item", has_text="Sums")
        sums.get_by_role("button", name="Delete Sums").click()
        expect(chats).to_have_count(2)
        sums.get_by_role("button", name="Confirm deleting Sums").click()
        expect(chats).to_have_count(1)
        expect(page.locator(".turn")).to_have_count(0)
        listed = httpx2.get(f"{url}/v1/sessions").json()["data"]
        assert [chat["title"] for chat in listed] == ["Tell me about penguins"]
        page.reload()  # the deleted chat is not the one a reload comes back to
        expect(page.locator(".turn")).to_have_count(0)
        expect(chats).to_have_count(1)


def budget_tokens(page: Page) -> int:
    text = page.locator("#tools-budget").text_content() or ""
    match = re.search(r"take (\d+) tokens", text)
    assert match, text
    return int(match.group(1))


def test_the_tools_of_a_chat_are_switched_and_their_cost_shown(tmp_path: Path, page: Page) -> None:
    servers = {"fx": fixture_entry(), "fx2": fixture_entry()}
    with served(tmp_path, [BACK, BACK], servers=servers) as url:
        created: list[object] = []
        page.on("request", lambda r: created.append(r.post_data_json) if r.url.endswith("/v1/sessions") else None)
        page.goto(url)
        page.get_by_role("button", name="Tools").click()
        expect(page.locator("#tools-heading")).to_have_text("Tools of the next new chat")
        fx2 = page.locator("input[data-tool='servers:fx2']")
        expect(fx2).to_be_checked()
        expect(page.locator("input[data-tool='servers:fx']")).to_be_checked()
        expect(page.locator("#tools-budget")).to_contain_text("tokens of the prompt")
        both = budget_tokens(page)
        expect(page.locator("#tools-budget-parts")).to_contain_text("fx2")

        fx2.uncheck()  # what the new chat will offer, and what that costs
        expect(page.locator("#tools-budget-parts")).not_to_contain_text("fx2")
        one = budget_tokens(page)
        assert 0 < one < both
        page.locator("input[data-tool='native:python']").check()
        expect(page.locator("#tools-budget-parts")).to_contain_text("built-in")
        with_python = budget_tokens(page)
        assert with_python > one

        say(page, "Hello?")
        expect(page.locator(".answer")).to_have_text("Back again.")
        assert created == [{"servers": ["fx"], "python": True}]
        expect(page.locator("#tools-heading")).to_have_text("Tools of this chat")
        expect(fx2).not_to_be_checked()
        expect(page.locator("input[data-tool='native:python']")).to_be_checked()
        assert budget_tokens(page) == with_python
        screenshot(page, "web-chat-tools.png")

        # Switched in the chat: the session's own tools change from its next turn.
        page.locator("input[data-tool='native:python']").uncheck()
        expect(page.locator("#tools-budget-parts")).not_to_contain_text("built-in")
        session = page.evaluate("() => localStorage.getItem('mcp-host-session')")
        assert httpx2.get(f"{url}/v1/sessions/{session}/tools").json()["python"] is False
        fx2.check()
        expect(page.locator("#tools-budget-parts")).to_contain_text("fx2")
        assert httpx2.get(f"{url}/v1/sessions/{session}/tools").json()["servers"] == ["fx", "fx2"]
        assert budget_tokens(page) == both
        say(page, "Again?")
        expect(page.locator(".answer").nth(1)).to_have_text("Back again.")


def test_a_phone_sized_dark_page_fits_and_keeps_the_chats_in_a_drawer(tmp_path: Path, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 780}, color_scheme="dark", has_touch=True)
    try:
        page = context.new_page()
        with served(tmp_path, [BACK]) as url:
            page.goto(url)
            say(page, "Hello from a phone")
            expect(page.locator(".answer")).to_have_text("Back again.")
            # Nothing wider than the screen: no sideways scrolling of the page.
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(19, 20, 23)", background  # the dark theme, from the system's choice
            chats = page.locator("#chats")
            expect(chats).to_be_hidden()
            page.get_by_role("button", name="Chats").click()
            expect(chats).to_be_visible()
            expect(page.locator("#chats-search")).to_be_focused()
            item = page.locator("#chats-list li.chat-item")
            expect(item.locator(".chat-title")).to_have_text("Hello from a phone")
            item.locator(".chat-open").click()  # opening a chat closes the drawer
            expect(chats).to_be_hidden()
            page.keyboard.press("Escape")  # Escape closes the drawer too
            page.get_by_role("button", name="Chats").click()
            expect(chats).to_be_visible()
            page.keyboard.press("Escape")
            expect(chats).to_be_hidden()
            # The panel buttons are one row that scrolls sideways; the last one still works.
            page.get_by_role("button", name="mcp.json").click()
            expect(page.locator("#config-text")).to_be_visible()
            page.get_by_role("button", name="New chat").click()
            expect(page.locator(".turn")).to_have_count(0)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_the_chats_are_reached_from_the_keyboard(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [BACK, SUM]) as url:
        page.goto(url)
        say(page, "First question")
        expect(page.locator(".answer")).to_have_text("Back again.")
        page.get_by_role("button", name="New chat").click()
        say(page, "Second question")
        expect(page.locator(".answer")).to_have_text("The sum is 42.")
        expect(page.locator("#message")).to_be_focused()
        page.keyboard.press("Control+k")
        expect(page.locator("#chats-search")).to_be_focused()
        page.keyboard.type("first")
        chats = page.locator("#chats-list li.chat-item")
        expect(chats).to_have_count(1)
        page.keyboard.press("Tab")
        expect(chats.first.locator(".chat-open")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator(".turn.user")).to_have_text("First question")
        expect(page.locator("#message")).to_be_focused()  # ready to go on with it


def test_a_turn_cut_off_by_a_restart_is_resumed_from_the_page(tmp_path: Path, page: Page) -> None:
    settings = "[api]\nturn_lease_s = 1\n"  # a killed server's turn is interrupted a second after
    port = free_port()  # the same origin after the restart: the page finds its chat again
    started: list[subprocess.Popen[bytes]] = []
    with served(tmp_path, [CALL_ADD], settings=settings, port=port, started=started):
        page.goto(f"http://127.0.0.1:{port}")
        say(page, "What is 20 + 22?")
        expect(page.locator(".tool-card").get_by_role("button", name="Allow once")).to_be_visible()
        started[0].kill()  # kill -9 while the call waits for approval
        started[0].wait()
    with served(tmp_path, [SUM], settings=settings, port=port):
        page.reload()
        resume = page.get_by_role("button", name="Resume the turn")
        expect(resume).to_be_visible()
        expect(page.locator(".note.resume")).to_contain_text("fx.add waited for your approval")
        expect(page.locator(".turn.user")).to_have_text("What is 20 + 22?")
        resume.click()
        expect(page.locator(".note.resume")).to_have_count(0)
        page.locator(".tool-card").last.get_by_role("button", name="Allow once").click()
        expect(page.locator(".tool-card").last.locator(".tool-result")).to_have_text("42")
        expect(page.locator(".answer").last).to_have_text("The sum is 42.")


def test_a_servers_resource_is_attached_to_a_message(tmp_path: Path, page: Page) -> None:
    servers = {"everything": {"command": everything_command()}}
    with served(tmp_path, [BACK, BACK], servers=servers) as url:
        listing = httpx2.get(f"{url}/v1/servers/everything/resources").json()["data"]
        resource = next(entry for entry in listing if entry["uri"] == ARCHITECTURE)
        label = resource.get("title") or resource["name"]
        sent: list[object] = []
        page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/messages") else None)
        page.goto(url)
        page.get_by_role("button", name="Attach", exact=True).click()
        page.get_by_role("button", name=f"Attach {label} from everything").click()
        chip = page.locator("#attachments .attachment")
        expect(chip).to_have_count(1)
        expect(chip).to_contain_text(f"everything: {label}")

        # An address that is not there: the message is refused, and the attachment stays for another try.
        page.get_by_label("Address of a resource on everything").fill("demo://resource/static/document/nope.md")
        page.get_by_label("Address of a resource on everything").press("Enter")
        expect(chip).to_have_count(2)
        say(page, "Summarise these.")
        expect(page.locator(".note.error")).to_contain_text("cannot attach")
        expect(chip).to_have_count(2)
        page.get_by_role("button", name="Remove demo://resource/static/document/nope.md").click()
        expect(chip).to_have_count(1)

        say(page, "Summarise this.")
        expect(page.locator(".answer")).to_have_text("Back again.")
        expect(chip).to_have_count(0)
        expect(page.locator(".turn.user").last.locator(".attachment")).to_have_text(f"everything: {label}")
        attached = [{"server": "everything", "uri": ARCHITECTURE}]
        assert sent[-1] == {"content": "Summarise this.", "attachments": attached}
        session = page.evaluate("() => localStorage.getItem('mcp-host-session')")
        history = httpx2.get(f"{url}/v1/sessions/{session}").json()["history"]
        said = json.dumps(history)
        assert f"attached: everything:{ARCHITECTURE}" in said and "Architecture" in said


def test_older_chats_are_paged_in_and_a_linked_mcp_json_is_explained(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, [BACK]) as url:
        for _ in range(55):
            assert httpx2.post(f"{url}/v1/sessions", json={}, timeout=30).status_code == 201
        page.goto(url)
        chats = page.locator("#chats-list li.chat-item")
        expect(chats).to_have_count(50)
        page.get_by_role("button", name="Show older").click()
        expect(chats).to_have_count(55)
        expect(page.get_by_role("button", name="Show older")).to_have_count(0)
        expect(chats.nth(50).locator(".chat-open")).to_be_focused()

        # A linked mcp.json (a dotfile manager's) is refused with its reason, not "changed on disk".
        path = tmp_path / "mcp.json"
        target = tmp_path / "dotfiles-mcp.json"
        path.rename(target)
        path.symlink_to(target)
        page.get_by_role("button", name="mcp.json").click()
        expect(page.locator("#config-text")).to_have_value(target.read_text())
        page.get_by_role("button", name="Save and apply").click()
        outcome = page.locator("#config-outcome")
        expect(outcome).to_contain_text("Not saved")
        expect(outcome).to_contain_text("link")
        expect(outcome).not_to_contain_text("changed on disk")
        assert path.is_symlink()


def test_another_chat_waits_for_the_running_answer(tmp_path: Path, page: Page) -> None:
    long = "<|channel|>final<|message|>" + "A long answer. " * 300 + "<|return|>"
    with served(tmp_path, [BACK, long], speed=40) as url:
        page.goto(url)
        say(page, "First")
        expect(page.locator(".answer")).to_have_text("Back again.")
        page.get_by_role("button", name="New chat").click()
        say(page, "Second")
        chats = page.locator("#chats-list li.chat-item")
        expect(chats).to_have_count(2)  # listed as soon as it opens, not when its answer ends
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        page.locator("#chats-list li.chat-item", has_text="First").locator(".chat-open").click()
        expect(page.locator("#status")).to_contain_text("Stop the answer (Esc) or let it finish")
        expect(page.locator(".turn.user")).to_have_text("Second")
        page.keyboard.press("Escape")
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        page.locator("#chats-list li.chat-item", has_text="First").locator(".chat-open").click()
        expect(page.locator(".turn.user")).to_have_text("First")
