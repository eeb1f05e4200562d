"""One streamed chat completion (``POST /v1/chat/completions`` with ``stream: true``) read
through the aiohttp stream transport: :class:`ChatStream`, made by
:meth:`r1console.adapters.vllm_client.VllmClient.chat_stream` (and re-exported there).

The reply is read as server-sent events into a
:class:`~r1console.core.streaming.StreamAccumulator`; a server that ignored ``stream: true``
and answered one JSON document is read too. Failures are the client's: an HTTP error status
→ :class:`ServerError` subclasses, a cut or stalled stream after the response began →
:class:`StreamInterrupted` with the partial reply, anything before → the transport's error.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator

from r1console.core.api_errors import (
    ProtocolError,
    ServerError,
    StreamInterrupted,
    error_from_response,
)
from r1console.core.sse import SSEEvent, SSEParser
from r1console.core.streaming import ChatResult, StreamAccumulator, StreamDelta

if TYPE_CHECKING:
    from r1console.adapters.vllm_client import VllmClient

CHAT_PATH = "/v1/chat/completions"
# After [DONE], read at most this much of the (empty) rest so the connection can be pooled.
_DRAIN_LIMIT = 64 * 1024


@dataclass(frozen=True)
class _Fed:
    delta: StreamDelta | None


class ChatStream:
    """One streamed chat request: an async iterator of :class:`StreamDelta` and an async
    context manager (leaving it closes the connection, which makes vLLM abort the request).

    ``accumulator`` holds everything received so far; ``result`` is its :class:`ChatResult`.
    """

    def __init__(self, client: VllmClient, messages: list[dict[str, Any]], *, model: str | None,
                 accumulator: StreamAccumulator | None, params: dict[str, Any]) -> None:
        self._client = client
        self._messages = messages
        self._model = model
        self._params = {k: v for k, v in params.items() if v is not None}
        self.accumulator = accumulator if accumulator is not None else StreamAccumulator()
        self._gen: AsyncIterator[StreamDelta] | None = None
        self._t0 = 0.0

    @property
    def result(self) -> ChatResult:
        return self.accumulator.result()

    def __aiter__(self) -> AsyncIterator[StreamDelta]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    async def collect(self) -> ChatResult:
        """Read the whole stream; return the result."""
        async for _ in self:
            pass
        return self.result

    def _elapsed(self) -> float:
        return self._client._clock() - self._t0

    async def _payload(self) -> tuple[str, dict[str, Any]]:
        """The model asked for (the served one when none was given) and the request body."""
        model = self._model or await self._client.model_id()
        stream_options = dict(self._params.pop("stream_options", None) or {})
        stream_options.setdefault("include_usage", True)
        return model, {"model": model, "messages": self._messages, "stream": True,
                       "stream_options": stream_options, **self._params}

    async def _run(self) -> AsyncIterator[StreamDelta]:
        client = self._client
        acc = self.accumulator
        model, payload = await self._payload()
        from r1console.adapters import vllm_stream as vs

        transport = client._stream_transport()
        url = client._url(CHAT_PATH)
        self._t0 = client._clock()
        got_response = False
        response = None
        try:
            response = await transport.session().post(
                url, timeout=transport.timeout(client.stream_timeout), allow_redirects=False,
                **vs.post_kwargs(payload))
            got_response = True
            if response.status >= 400:
                body = await response.read()
                raise error_from_response(response.status, body, url=url,
                                          api_key_sent=bool(client.api_key), model=model)
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                yield await self._single_document(response, url, ctype)
                return
            async with aclosing(self._events(response.content)) as events:
                async for delta in events:
                    yield delta
        except vs.TRANSPORT_ERRORS as exc:
            acc.end(self._elapsed())
            if acc.complete:
                return  # finished; only the tail ([DONE] / usage) was lost
            raise self._transport_failure(exc, got_response, url) from None
        finally:
            acc.end(self._elapsed())
            if response is not None:
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()   # unfinished (cancelled, error): vLLM aborts the request
        if not acc.done and not acc.complete:
            raise StreamInterrupted(
                f"the server ended the stream before finishing the reply (after {acc.chunks} chunks, "
                "no finish_reason and no [DONE])", partial=acc.result())

    async def _single_document(self, response: Any, url: str, ctype: str) -> StreamDelta:
        """A server that ignored stream=true and answered one JSON document: feed it whole."""
        acc = self.accumulator
        body = await response.read()
        try:
            data = json.loads(body)
        except ValueError:
            raise ProtocolError(f"{url} answered {ctype or 'no content type'}, "
                                "not an event stream") from None
        delta = acc.feed(data, self._elapsed())
        acc.mark_done(self._elapsed())
        self._raise_stream_error()
        return delta

    async def _events(self, content: Any) -> AsyncGenerator[StreamDelta, None]:
        """The deltas of the event stream ``content``, up to ``[DONE]`` or its end."""
        parser = SSEParser()
        while True:
            raw = await content.readany()
            if not raw:
                break
            now = self._elapsed()
            for event in parser.feed(raw):
                fed = self._event(event, now, CHAT_PATH)
                if fed is None:  # [DONE]
                    await _drain(content)
                    return
                if fed.delta is not None:
                    yield fed.delta
        for event in parser.close():  # an event completed by the end of the stream
            fed = self._event(event, self._elapsed(), CHAT_PATH)
            if fed is None:
                return
            if fed.delta is not None:
                yield fed.delta

    def _transport_failure(self, exc: BaseException, got_response: bool, url: str) -> Exception:
        """The error for a transport failure: the partial reply when the response had begun."""
        from r1console.adapters import vllm_stream as vs

        client = self._client
        acc = self.accumulator
        read_timeout = vs.is_read_timeout(exc)
        if got_response and not (acc.chunks == 0 and read_timeout):
            if read_timeout:
                why = f"the stream stalled: nothing for {client.stream_timeout:g} s after {acc.chunks} chunks"
            else:
                why = (f"the connection was cut mid-stream after {acc.chunks} chunks "
                       f"({exc or type(exc).__name__})")
            return StreamInterrupted(why, partial=acc.result(),
                                     hint="what arrived is kept; the server log may say why")
        return vs.stream_error(exc, base_url=client.base_url, url=url,
                               connect_timeout=client.connect_timeout,
                               read_timeout=client.stream_timeout)

    def _event(self, event: SSEEvent, now: float, path: str) -> _Fed | None:
        """Feed one SSE event; None on ``[DONE]``."""
        acc = self.accumulator
        if event.is_done:
            acc.mark_done(now)
            return None
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise ProtocolError(f"{self._client._url(path)} sent an event that is not JSON: "
                                f"{event.data[:120]!r}") from None
        if not isinstance(chunk, dict):
            return _Fed(None)
        delta = acc.feed(chunk, now)
        self._raise_stream_error()
        return _Fed(delta)

    def _raise_stream_error(self) -> None:
        err = self.accumulator.error
        if err is not None:
            status = err.code if isinstance(err.code, int) and err.code >= 400 else None
            raise ServerError(f"the server reported an error mid-stream"
                              f"{f' ({status})' if status else ''}: {err.message}",
                              status=status, server_message=err.message,
                              url=self._client._url(CHAT_PATH))


async def _drain(content: Any) -> None:
    """Read the (empty) rest of the body so the connection goes back to the pool instead of
    being closed: one TCP connection per request otherwise."""
    rest = 0
    while rest <= _DRAIN_LIMIT:
        more = await content.readany()
        if not more:
            break
        rest += len(more)
