"""The chat screen against the simulated vLLM server: streaming, reasoning apart, stop, export."""

from __future__ import annotations

from r1console.demo.sim_server import SimServer
from r1console.tui.screens.chat import ChatScreen
from r1console.tui.widgets.chat_item import ChatItem
from tests_helpers import Host, opener_for, wait_until


def host(url: str, key: str | None) -> Host:
    return Host(lambda: ChatScreen("sim", opener_for(url, key), max_tokens=200))


async def test_chat_streams_reasoning_apart_and_exports(tmp_path):
    async with SimServer(vllm_version="0.32.0", max_num_seqs=4, time_scale=0.0, api_key="k", seed=3) as srv:
        app = host(srv.url, "k")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, ChatScreen)
            await wait_until(pilot, lambda: screen.session.model is not None)
            await pilot.click("#chat-input")
            await pilot.press(*"Why is the sky blue?")
            await pilot.press("enter")
            await wait_until(pilot, lambda: not screen.session.streaming and screen.session.turns)
            summary = screen.query_one(".chat-summary")
            await wait_until(pilot, lambda: "streaming" not in str(summary.render()))
            assert "tokens" in str(summary.render()), str(summary.render())
            turn = screen.session.turns[0]
            assert turn.state.value == "done"
            item = screen.query_one(ChatItem)
            assert item.reasoning_text == turn.reasoning and turn.reasoning
            assert item.answer_text == turn.content
            if turn.content:
                assert item.reasoning_section.collapsed  # the answer started: reasoning folded away
            # export to Markdown
            target = tmp_path / "conv.md"
            await pilot.press("ctrl+o")
            await pilot.pause()
            app.screen.query_one("#dialog-input").value = str(target)
            await pilot.press("enter")
            await wait_until(pilot, target.exists)
            text = target.read_text()
            assert "Why is the sky blue?" in text and "**Reasoning**" in text


async def test_chat_wrong_key_shows_a_clear_error():
    async with SimServer(vllm_version="0.32.0", time_scale=0.0, api_key="right") as srv:
        app = host(srv.url, "wrong")
        async with app.run_test(size=(120, 40)) as pilot:
            header = app.screen.query_one("#chat-header")
            await wait_until(pilot, lambda: "cannot reach the server" in str(header.render()))
            assert "401" in str(header.render()) and "API key" in str(header.render())
