"""The terminal chat's forms, URL requests, sampling display and prompt commands, with scripted input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pytest

from mcp_host.agent import ElicitationAnswer, ElicitationRequired
from mcp_host.chat_commands import parse_prompt_command
from mcp_host.chat_forms import fill_elicitation, sampling_lines, shown
from mcp_host.errors import UsageError

pytestmark = pytest.mark.anyio

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"title": "String", "type": "string", "description": "Your full, legal name"},
        "check": {"type": "boolean", "title": "Boolean"},
        "firstLine": {"type": "string", "default": "It was a dark and stormy night."},
        "email": {"type": "string", "format": "email"},
        "integer": {"type": "integer", "minimum": 1, "maximum": 100, "default": 42},
        "friend": {"type": "string", "enum": ["Monica", "Rachel", "Joey"], "default": "Monica"},
        "hero": {"type": "string", "oneOf": [{"const": "hero-1", "title": "Superman"}, {"const": "hero-2"}]},
        "fish": {
            "type": "array",
            "items": {"anyOf": [{"const": "fish-1", "title": "Tuna"}, {"const": "fish-2", "title": "Salmon"}]},
            "default": ["fish-1"],
        },
    },
    "required": ["name"],
}


class Script:
    """The user at the keyboard: answers in order (an exception is a key like Ctrl-C); every line shown is kept."""

    def __init__(self, answers: Sequence[str | BaseException]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.said: list[str] = []

    async def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        assert self.answers, f"the form asked more than the script answers: {prompt!r}"
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def say(self, markup: str) -> None:
        self.said.append(markup)

    @property
    def screen(self) -> str:
        return "\n".join(self.said)


def form(schema: dict[str, Any] = SCHEMA) -> ElicitationRequired:
    return ElicitationRequired(
        elicitation_id="elicit_1",
        call_id="call_1",
        server="everything",
        mode="form",
        message="Please provide inputs",
        requested_schema=schema,
    )


async def test_a_filled_form_keeps_defaults_on_enter_and_reads_each_kind() -> None:
    user = Script(["a", "Ada Lovelace", "y", "", "ada@example.com", "", "2", "Superman", "2, 1", "s"])
    answer = await fill_elicitation(form(), user.ask, user.say)
    assert answer == ElicitationAnswer(
        "accept",
        {
            "name": "Ada Lovelace",
            "check": True,
            "firstLine": "It was a dark and stormy night.",
            "email": "ada@example.com",
            "integer": 42,
            "friend": "Rachel",
            "hero": "hero-1",
            "fish": ["fish-2", "fish-1"],
        },
    )
    assert "Please provide inputs" in user.screen and "Your full, legal name" in user.screen
    assert "    1. Monica" in user.said and "    1. Superman [dim](hero-1)[/dim]" in user.said
    assert "  firstLine [It was a dark and stormy night.]: " in user.prompts
    assert "  check (y/n): " in user.prompts
    assert "  fish (numbers or values, comma-separated) [Tuna]: " in user.prompts


async def test_wrong_answers_are_asked_again_with_the_reason() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "integer": {"type": "integer", "minimum": 1, "maximum": 100},
            "email": {"type": "string", "format": "email"},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "integer"],
    }
    user = Script(["accept", "", "Ada", "abc", "500", "1.5", "7", "not-an-address", "a@b.co", "maybe", "n", "s"])
    answer = await fill_elicitation(form(schema), user.ask, user.say)
    assert answer == ElicitationAnswer("accept", {"name": "Ada", "integer": 7, "email": "a@b.co", "ok": False})
    screen = user.screen
    assert "name is required" in screen
    assert "'abc' is not a number" in screen and "must be at most 100" in screen
    assert "not a whole number" in screen and "must be an email address" in screen and "answer yes or no" in screen


async def test_an_optional_field_left_empty_is_left_out() -> None:
    schema = {"type": "object", "properties": {"nickname": {"type": "string"}}}
    user = Script(["a", "", "send"])
    assert await fill_elicitation(form(schema), user.ask, user.say) == ElicitationAnswer("accept", {})


@pytest.mark.parametrize(("typed", "action"), [("d", "decline"), ("decline", "decline"), ("c", "cancel")])
async def test_the_user_may_decline_or_cancel_before_the_form(typed: str, action: Literal["decline", "cancel"]) -> None:
    user = Script(["what?", typed])
    assert await fill_elicitation(form(), user.ask, user.say) == ElicitationAnswer(action)
    assert any("answer a (accept), d (decline) or c (cancel)" in line for line in user.said)
    assert len(user.prompts) == 2  # no field was asked


@pytest.mark.parametrize("key", [KeyboardInterrupt(), EOFError()])
async def test_ctrl_c_or_ctrl_d_in_the_middle_cancels_the_question(key: BaseException) -> None:
    user = Script(["a", "Ada", key])
    assert await fill_elicitation(form(), user.ask, user.say) == ElicitationAnswer("cancel")
    assert "cancelled the server's question" in user.screen


async def test_a_url_is_shown_never_opened_and_accept_means_opened() -> None:
    event = ElicitationRequired(
        elicitation_id="elicit_2",
        call_id="call_1",
        server="everything",
        mode="url",
        message="Sign in",
        url="https://example.com/auth?state=[x]",
    )
    user = Script(["a"])
    assert await fill_elicitation(event, user.ask, user.say) == ElicitationAnswer("accept")
    assert r"https://example.com/auth?state=\[x]" in user.screen and "not opened for you" in user.screen
    assert user.prompts == ["[a]ccept (I opened it) / [d]ecline / [c]ancel? "]


async def test_the_user_reviews_and_edits_before_sending_and_is_warned_of_secrets() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
        "required": ["name"],
    }
    user = Script(["a", "Ada", "hunter2", "e", "name", "Grace", "s"])
    answer = await fill_elicitation(form(schema), user.ask, user.say)
    assert answer == ElicitationAnswer("accept", {"name": "Grace", "password": "hunter2"})
    assert "servers must not ask for secrets in a form" in user.screen
    assert "about to send:" in user.screen and "password: •••" in user.screen and "hunter2" not in user.screen
    declined = Script(["a", "Ada", "", "d"])
    assert await fill_elicitation(form(schema), declined.ask, declined.say) == ElicitationAnswer("decline")


async def test_a_url_names_its_host_and_flags_a_hidden_one() -> None:
    event = ElicitationRequired(
        elicitation_id="elicit_3",
        call_id=None,
        server="x",
        mode="url",
        message="Pay",
        url="http://bank.example@evil.example/pay",
    )
    user = Script(["d"])
    assert await fill_elicitation(event, user.ask, user.say) == ElicitationAnswer("decline")
    assert "it leads to [bold]evil.example[/bold] [red](not https)[/red]" in user.screen
    assert "hides its real address behind a user name" in user.screen


def test_server_text_cannot_restyle_or_control_the_terminal() -> None:
    assert shown("[bold]hi[/bold]\x1b[2J\x07") == "\\[bold]hi\\[/bold]\ufffd[2J\ufffd"
    assert shown("two\nlines\tok") == "two\nlines\tok"
    assert shown("abc\u202eevil") == "abc\ufffdevil"  # no right-to-left override


def test_a_sampling_request_reads_as_system_prompt_messages_and_limits() -> None:
    request = {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "Resource sampling: [what] is MCP?"}},
            {"role": "assistant", "content": [{"type": "text", "text": "A protocol."}, {"type": "image"}]},
        ],
        "systemPrompt": "You are a helpful test server.",
        "maxTokens": 100,
        "temperature": 0.7,
    }
    lines = sampling_lines("everything", request)
    assert lines == [
        "[bold]everything[/bold] asks the model to write a message (sampling):",
        "  [dim]system:[/dim] You are a helpful test server.",
        "  [dim]user:[/dim] Resource sampling: \\[what] is MCP?",
        "  [dim]assistant:[/dim] A protocol. \\[image content]",
        "  [dim]maxTokens: 100, temperature: 0.7[/dim]",
    ]


def test_prompt_commands_parse_quoted_arguments() -> None:
    line = '/everything.args-prompt city="New York" state=NY'
    assert parse_prompt_command(line) == ("everything", "args-prompt", {"city": "New York", "state": "NY"})
    assert parse_prompt_command("/everything.simple-prompt") == ("everything", "simple-prompt", {})
    for bad in ("/everything.args-prompt Paris", '/everything.args-prompt city="Paris', "/.x", "/everything."):
        with pytest.raises(UsageError):
            parse_prompt_command(bad)
