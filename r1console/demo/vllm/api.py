"""The simulated vLLM server's OpenAI API: ``/v1/chat/completions`` and ``/v1/completions`` request
validation (vLLM's error bodies), generation through the engine, and the JSON and SSE response bodies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from http import HTTPStatus
from typing import Any

from r1console.demo.sim_engine import ANSWER, EOS, FINISHED, REASONING, THINK_END, SimRequest
from r1console.demo.sim_text import ReplyText, count_tokens
from r1console.demo.vllm import http11
from r1console.demo.vllm.wire import (
    ENGINE_ERROR,
    SSE_TYPE,
    _Channel,
    _Conn,
    _Dropped,
    _dumps,
    _Http,
    _message_text,
    _unwatch,
)


class _OpenAiApi:
    """``SimServer``'s generation routes (uses its config, profile, engine, counters, ``_send*``)."""

    # ---- generation ------------------------------------------------------------------------
    def _parse(self, req: _Http, chat: bool) -> tuple[dict | None, tuple[int, dict] | None]:
        """(params, None) or (None, (status, error body))."""
        p = self.profile
        try:
            body = _json_object(req.body, p)
            prompt_text, prompt_tokens, fingerprint_src = (_chat_prompt if chat else _completion_prompt)(body, p)
            model = body.get("model")
            if model is not None and model != self.config.served_name:
                raise _Reject(404, p.model_not_found(str(model), self.config.served_name))
            max_tokens = _max_tokens(body, chat, prompt_tokens, self.config.max_model_len, p)
            if body.get("n", 1) not in (1, None):
                raise _Reject(400, p.bad_request("n > 1 is not supported by the simulated server", "n"))
        except _Reject as reject:
            return None, (reject.status, reject.body)
        stream = bool(body.get("stream", False))
        options = body.get("stream_options")
        include_usage = stream and isinstance(options, dict) and options.get("include_usage", True) is not False
        fingerprint = hashlib.sha256(_dumps([req.path, fingerprint_src])).hexdigest()[:16]
        return {
            "prompt_text": prompt_text, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens,
            "stream": stream, "include_usage": include_usage, "ignore_eos": bool(body.get("ignore_eos", False)),
            "temperature": body.get("temperature"), "seed": body.get("seed"), "fingerprint": fingerprint,
        }, None

    async def _watch(self, conn: _Conn, ch: _Channel) -> None:
        """Read ahead while a response is in progress: EOF means the client went away."""
        try:
            while True:
                data = await conn.reader.read(65536)
                if not data:
                    break
                conn.buf += data
        except (ConnectionError, OSError):
            pass
        conn.disconnected = True
        ch.event.set()

    async def _generate(self, conn: _Conn, req: _Http, *, chat: bool) -> bool:
        record = self._open_record(req)
        params, error = self._parse(req, chat)
        if error is not None:
            self.rejected += 1
            record["http_status"] = error[0]
            return await self._send_json(conn, req, error[0], error[1])
        assert params is not None
        fp = params["fingerprint"]
        seen = self._seen.get(fp, 0)
        self._seen[fp] = seen + 1
        if seen:
            self.duplicates += 1
        record.update(fingerprint=fp, stream=params["stream"], prompt_tokens=params["prompt_tokens"])

        fault = self._decide_fault()
        if fault == "status_5xx":
            self.faults_injected["status_5xx"] += 1
            code = self.faults.status_5xx_code
            record.update(status="status_5xx", http_status=code)
            message = ENGINE_ERROR if code == 500 else HTTPStatus(code).phrase
            return await self._send_json(conn, req, code, self.profile.server_error(code, message))

        self.in_flight += 1
        record["status"] = "in_flight"
        sreq: SimRequest | None = None
        try:
            if fault == "stalled" and self.faults.stall_after_tokens == 0:
                await self._stall(conn, self.faults.stall_s)
            sreq, ch, text = self._admit(params, seen, fault)
            rid = self.profile.new_id("chatcmpl" if chat else "cmpl")
            created = int(time.time())
            if params["stream"]:
                keep = await self._stream(conn, req, sreq, ch, text, rid, created, chat, params, fault, record)
            else:
                keep = await self._complete(conn, req, sreq, ch, text, rid, created, chat, fault, record)
            self._close_record(record, sreq)
            return keep
        except (_Dropped, ConnectionError):
            if record["status"] == "in_flight":
                record["status"] = "aborted"
                self.aborted += 1
            raise _Dropped() from None
        finally:
            self.in_flight -= 1
            if sreq is not None:
                record["completion_tokens"] = sreq.generated
                if not sreq.finished:
                    self.engine.abort(sreq)
                sreq.user_data = None

    def _open_record(self, req: _Http) -> dict[str, Any]:
        """Count the request and start its record (rejected until it is admitted)."""
        self.requests_seen += 1
        self.by_endpoint[req.path] = self.by_endpoint.get(req.path, 0) + 1
        record: dict[str, Any] = {
            "endpoint": req.path, "x_request_id": req.headers.get("x-request-id"), "fingerprint": None,
            "stream": None, "status": "rejected", "http_status": None, "finish_reason": None,
            "prompt_tokens": None, "completion_tokens": 0, "wall_time": time.time(),
        }
        self._records.append(record)
        return record

    def _admit(self, params: dict, seen: int, fault: str | None) -> tuple[SimRequest, _Channel, ReplyText]:
        """The request's lengths and text (the same for a repeated deterministic request), into the engine."""
        fp = params["fingerprint"]
        deterministic = params["temperature"] == 0 or params["seed"] is not None
        key = f"{fp}|{params['seed']}" if deterministic else f"{fp}|{seen}"
        reasoning, answer = self.engine.sample_lengths(key)
        text = ReplyText(params["prompt_text"], f"{self.config.seed}|{key}", reasoning,
                         answer if not params["ignore_eos"] else params["max_tokens"])
        ch = _Channel(every=params["stream"] or fault == "dropped")
        sreq = SimRequest(secrets.token_hex(8), params["prompt_tokens"], params["max_tokens"], reasoning,
                          answer, ignore_eos=params["ignore_eos"], user_data=ch)
        if not self.engine.has_work():
            self._catch_up_idle()
        self.engine.add_request(sreq)
        self._work.set()
        return sreq, ch, text

    def _close_record(self, record: dict[str, Any], sreq: SimRequest) -> None:
        """The reply went out: count it (and a repeat of a completed request)."""
        fp = record["fingerprint"]
        self.completed += 1
        record.update(status="completed", finish_reason=sreq.finish_reason)
        if self._completed_fp.get(fp):
            self.completed_duplicates += 1
        self._completed_fp[fp] = self._completed_fp.get(fp, 0) + 1

    async def _wait_tokens(self, conn: _Conn, sreq: SimRequest, ch: _Channel, have: int) -> None:
        """Until ``sreq`` has more than ``have`` tokens or is done; _Dropped if the client left."""
        while sreq.generated <= have and sreq.status != FINISHED:
            if conn.disconnected:
                raise _Dropped()
            ch.event.clear()
            await ch.event.wait()
        if conn.disconnected:
            raise _Dropped()

    async def _complete(self, conn: _Conn, req: _Http, sreq: SimRequest, ch: _Channel, text: ReplyText,
                        rid: str, created: int, chat: bool, fault: str | None, record: dict) -> bool:
        watcher = asyncio.create_task(self._watch(conn, ch))
        try:
            drop_at = self.faults.drop_after_tokens if fault == "dropped" else None
            while sreq.status != FINISHED:
                await self._wait_tokens(conn, sreq, ch, sreq.generated)
                if drop_at is not None and sreq.generated >= drop_at:
                    self._drop(conn, record)
        finally:
            await _unwatch(watcher)
        if fault == "stalled" and self.faults.stall_after_tokens > 0:
            await self._stall(conn, self.faults.stall_s)
        reasoning: list[str] = []
        answer: list[str] = []
        think_end = False
        pieces = text.pieces()
        for _ in range(sreq.output_len):
            kind, tok = next(pieces)
            if kind == REASONING:
                reasoning.append(tok)
            elif kind == THINK_END:
                think_end = True
                if not chat:
                    answer.append(tok)
            elif kind == ANSWER:
                answer.append(tok)
        model = self.config.served_name
        if chat:
            content = "".join(answer) if think_end else None
            body = self.profile.chat_response(rid, created, model, "".join(reasoning), content or None,
                                              sreq.finish_reason, sreq.prompt_tokens, sreq.generated)
        else:
            body = self.profile.completion_response(rid, created, model, "".join(reasoning + answer),
                                                    sreq.finish_reason, sreq.prompt_tokens, sreq.generated)
        record["http_status"] = 200
        return await self._send_json(conn, req, 200, body)

    async def _stream(self, conn: _Conn, req: _Http, sreq: SimRequest, ch: _Channel, text: ReplyText, rid: str,
                      created: int, chat: bool, params: dict, fault: str | None, record: dict) -> bool:
        writer = conn.writer
        chunked = req.version == "1.1"
        keep_alive = req.keep_alive and chunked
        headers = [("content-type", SSE_TYPE), ("vary", "Origin")] + ([("transfer-encoding", "chunked")]
                                                                       if chunked else [])
        writer.write(self._head(200, headers, keep_alive))
        self._access(conn, req, 200)
        record["http_status"] = 200
        model = self.config.served_name
        shape = self.profile.chat_stream(rid, created, model) if chat else \
            self.profile.completion_stream(rid, created, model)
        frames = _Frames(shape, text.pieces(), sreq, chat, chunked)
        drop_at = self.faults.drop_after_tokens if fault == "dropped" else None
        stall_at = self.faults.stall_after_tokens if fault == "stalled" and self.faults.stall_after_tokens else None
        sent = 0
        watcher = asyncio.create_task(self._watch(conn, ch))
        try:
            while sent <= frames.last:
                await self._wait_tokens(conn, sreq, ch, sent)
                upto = sreq.generated
                if stall_at is not None and sent < stall_at <= upto:
                    upto = stall_at
                if drop_at is not None and upto > drop_at:
                    upto = max(sent, drop_at)
                out = frames.tokens(sent, upto)
                sent = upto
                if out:
                    writer.write(b"".join(out))
                    if writer.transport.get_write_buffer_size() > 1 << 16:
                        await writer.drain()
                if drop_at is not None and sent >= drop_at:
                    await writer.drain()
                    self._drop(conn, record)
                if stall_at is not None and sent == stall_at:
                    stall_at = None
                    await writer.drain()
                    await self._stall(conn, self.faults.stall_s, ch)
        finally:
            await _unwatch(watcher)
        record["finish_reason"] = sreq.finish_reason   # the whole reply went out (the tail may not)
        writer.write(frames.tail(params["include_usage"]))
        await writer.drain()
        return keep_alive


class _Reject(Exception):
    """A request vLLM refuses: the status and error body to answer with."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _json_object(raw: bytes, p: Any) -> dict:
    """The request body as a JSON object, or FastAPI's validation error."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        pos = getattr(err, "pos", 0)
        msg = getattr(err, "msg", "Invalid UTF-8")
        raise _Reject(400, p.validation_error("json_invalid", f"body.{pos}", "JSON decode error", 0,
                                              {"error": msg})) from None
    if not isinstance(body, dict):
        raise _Reject(400, p.validation_error("model_attributes_type", "body", "Input should be a valid dictionary "
                                              "or object to extract fields from", 0))
    return body


def _chat_prompt(body: dict, p: Any) -> tuple[str, int, Any]:
    """(the last user message, the prompt's tokens, what identifies the request) of a chat body."""
    messages = body.get("messages")
    if messages is None:
        raise _Reject(400, p.validation_error("missing", "body.messages", "Field required", len(body)))
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _Reject(400, p.validation_error("list_type", "body.messages", "Input should be a valid list",
                                              len(body)))
    texts = [_message_text(m.get("content")) for m in messages]
    prompt_text = next((t for m, t in zip(reversed(messages), reversed(texts))
                        if m.get("role") == "user"), texts[-1] if texts else "")
    # <｜begin▁of▁sentence｜>, one role token per message, <｜Assistant｜><think>\n
    return prompt_text, 1 + sum(1 + count_tokens(t) for t in texts) + 3, messages


def _completion_prompt(body: dict, p: Any) -> tuple[str, int, Any]:
    """(the prompt's text, its tokens, what identifies the request) of a completions body: one prompt, a
    string or a list of token ids."""
    prompt = body.get("prompt")
    if prompt is None:
        raise _Reject(400, p.validation_error("missing", "body.prompt", "Field required", len(body)))
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, 1 + count_tokens(prompt), prompt
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return " ".join(map(str, prompt)), len(prompt), prompt
    raise _Reject(400, p.bad_request("the simulated server takes one prompt (a string or a list "
                                     "of token ids) per request", "prompt"))


def _max_tokens(body: dict, chat: bool, prompt_tokens: int, max_len: int, p: Any) -> int:
    """The request's output budget, checked against the context as vLLM checks it (the rest of the context
    when the request names none)."""
    max_tokens = body.get("max_completion_tokens") if chat else None
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or max_tokens < 1):
        raise _Reject(400, p.bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens"))
    if prompt_tokens > max_len:
        raise _Reject(400, p.context_too_long(max_len, prompt_tokens))
    if max_tokens is not None and max_tokens > max_len:
        raise _Reject(400, p.max_tokens_too_big(max_tokens, max_len))
    if max_tokens is None:
        max_tokens = max_len - prompt_tokens
    if max_tokens < 1 or prompt_tokens + max_tokens > max_len:
        raise _Reject(400, p.context_plus_output_too_long(max_len, prompt_tokens, max(1, max_tokens)))
    return max_tokens


class _Frames:
    """The SSE frames of one streamed reply: token ``i`` of the output in the endpoint's shape (chunked
    transfer encoding on HTTP/1.1), then the usage chunk and ``[DONE]``."""

    def __init__(self, shape: Any, pieces: Any, sreq: SimRequest, chat: bool, chunked: bool) -> None:
        self.shape, self.pieces, self.sreq, self.chat, self.chunked = shape, pieces, sreq, chat, chunked
        self.last = sreq.output_len - 1

    def frame(self, payload: str) -> bytes:
        data = ("data: " + payload + "\n\n").encode("utf-8")
        return b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data

    def tokens(self, start: int, stop: int) -> list[bytes]:
        """The frames of tokens ``start`` .. ``stop - 1`` (``</think>`` sends none unless it is the last)."""
        shape, out = self.shape, []
        for i in range(start, stop):
            kind, tok = next(self.pieces)
            reason = self.sreq.finish_reason if i == self.last else None
            if not self.chat:
                out.append(self.frame(shape.chunk(tok, "stop" if kind == EOS else reason)))
                continue
            if i == 0:
                out.append(self.frame(shape.role))
            if kind == REASONING:
                delta = shape.reasoning_delta(tok)
            elif kind == ANSWER:
                delta = shape.content_delta(tok)
            elif kind == EOS:
                delta, reason = '{"content":""}', "stop"
            else:  # </think>: no chunk unless it is the last token
                if reason is None:
                    continue
                delta = "{}"
            out.append(self.frame(shape.finish(delta, reason) if reason else shape.chunk(delta)))
        return out

    def tail(self, include_usage: bool) -> bytes:
        tail: list[bytes] = []
        if include_usage:
            tail.append(self.frame(self.shape.usage(self.sreq.prompt_tokens, self.sreq.generated)))
        tail.append(self.frame("[DONE]"))
        if self.chunked:
            tail.append(http11.LAST_CHUNK)
        return b"".join(tail)
