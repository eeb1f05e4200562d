"""Run one turn of a :class:`r1console.core.chat.ChatSession` against a :class:`VllmClient`.

The one place that ties the conversation model to the network, used by ``r1console chat`` and
by the TUI's chat screen (inside a ``@work(exclusive=True)`` worker)::

    turn = await run_turn(client, session, "question", on_delta=callback)

* the request is ``session.request_messages()`` (history without reasoning) with
  ``session.model`` and ``session.params``;
* each :class:`StreamDelta` is passed to ``on_delta(turn, delta)`` (sync or async) after the
  turn's accumulator took it, so a renderer can append just the new text;
* cancelling the task that awaits ``run_turn`` (Ctrl-C, ``worker.cancel()``) closes the HTTP
  stream — vLLM then aborts the request — and marks the turn CANCELLED, keeping what arrived;
* any :class:`R1Error` marks the turn FAILED with its message and is re-raised.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable

from r1console.adapters.vllm_client import VllmClient
from r1console.core.chat import ChatSession, Turn
from r1console.core.errors import R1Error
from r1console.core.streaming import StreamDelta

DeltaCallback = Callable[[Turn, StreamDelta], Awaitable[None] | None]


async def run_turn(client: VllmClient, session: ChatSession, text: str, *,
                   on_delta: DeltaCallback | None = None, **params: Any) -> Turn:
    """Send ``text`` as the next user message and stream the reply into the session.
    ``params`` override ``session.params`` for this request only."""
    turn = session.begin(text)
    request = {**session.params, **params}
    try:
        if session.model is None:
            session.model = await client.model_id()
        async with client.chat_stream(session.request_messages(), model=session.model,
                                      accumulator=turn.stream, **request) as stream:
            async for delta in stream:
                if on_delta is not None:
                    out = on_delta(turn, delta)
                    if inspect.isawaitable(out):
                        await out
    except asyncio.CancelledError:
        session.cancel()
        raise
    except R1Error as err:
        session.fail(err.message)
        raise
    except BaseException as err:  # a renderer bug must not leave the turn "streaming"
        session.fail(f"{type(err).__name__}: {err}")
        raise
    return session.finish()
