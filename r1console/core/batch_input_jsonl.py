"""The two JSONL formats, one request per line.

``openai``
    OpenAI batch JSONL as ``vllm run-batch`` takes it:
    ``{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [...], ...}}``.
    Other ``body`` fields are sent as given; ``model`` is kept on the item.
``simple``
    ``{"id": "q1", "prompt": "..."}`` per line (optional ``"system"``).

The first object line decides which of the two a file is.
"""

from __future__ import annotations

import json
from typing import Any

from r1console.core.batch_input_checks import (
    formats_hint,
    id_value,
    kind,
    problems_error,
    raise_problems,
    surrogate_problem,
    text_of,
)
from r1console.core.batch_items import BatchInput, BatchItem

CHAT_URL = "/v1/chat/completions"
_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Body fields the runner owns: the stream is always on, with usage.
_RESERVED_BODY = {"messages", "model", "stream", "stream_options"}


def parse_jsonl(text: str, source: str) -> BatchInput:
    problems: list[str] = []
    records = _json_lines(text, source, problems)
    fmt = _jsonl_format(records, source, problems)
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    key = "custom_id" if fmt == "openai" else "id"
    for lineno, rec in records:
        where = f"{source}:{lineno}"
        if not isinstance(rec, dict):
            problems.append(f"{where}: expected a JSON object, found {kind(rec)}")
            continue
        rid = id_value(rec, key, where, "", problems)
        label = f"{key} {rid!r}" if rid else ""
        parsed = (openai_record if fmt == "openai" else simple_record)(rec, where, label, problems)
        if rid is None:
            continue
        if rid in seen:
            problems.append(f"{where}: duplicate {key} {rid!r} (first at line {seen[rid]})")
            continue
        seen[rid] = lineno
        if parsed is not None:
            messages, params, model = parsed
            items.append(BatchItem(id=rid, index=len(items), messages=messages, params=params,
                                   model=model, line=lineno))
    raise_problems(problems)
    return BatchInput(source=source, format=fmt, items=tuple(items))


def _json_lines(text: str, source: str, problems: list[str]) -> list[tuple[int, Any]]:
    """``(line number, document)`` of every non-blank line that is valid JSON without lone surrogates."""
    records: list[tuple[int, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{source}:{lineno}:{err.colno}: invalid JSON: {err.msg}")
            continue
        if not surrogate_problem(rec, "", f"{source}:{lineno}", problems):
            records.append((lineno, rec))
    return records


def _jsonl_format(records: list[tuple[int, Any]], source: str, problems: list[str]) -> str:
    """``openai`` or ``simple``, from the first object line; raises when no line tells."""
    fmt = None
    for lineno, rec in records:
        if isinstance(rec, dict):
            if "custom_id" in rec or "body" in rec:
                fmt = "openai"
            elif "prompt" in rec or "id" in rec:
                fmt = "simple"
            else:
                problems.append(f"{source}:{lineno}: not a batch request: expected "
                                '{"custom_id", "body": {"messages"}} or {"id", "prompt"}, '
                                f"found keys {sorted(rec)[:6]}")
            break
    if fmt is None:
        if not problems:
            problems.append(f"{source}: no requests in the file" if not records else
                            f"{source}:{records[0][0]}: expected a JSON object, found {kind(records[0][1])}")
        raise problems_error(problems, hint=formats_hint())
    return fmt


def openai_record(rec: dict[str, Any], where: str, label: str, problems: list[str]):
    tag = f"{label}: " if label else ""
    ok = True
    method = rec.get("method", "POST")
    if method != "POST":
        problems.append(f"{where}: {tag}method must be \"POST\", found {method!r}")
        ok = False
    url = rec.get("url", CHAT_URL)
    if url != CHAT_URL:
        problems.append(f"{where}: {tag}url {url!r} is not supported: only {CHAT_URL} "
                        "(chat completions) is streamed")
        ok = False
    if "body" not in rec:
        problems.append(f"{where}: {tag}missing field body (the chat completion request)")
        return None
    body = rec["body"]
    if not isinstance(body, dict):
        problems.append(f"{where}: {tag}body must be an object, found {kind(body)}")
        return None
    messages = messages_of(body, where, tag, problems)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        problems.append(f"{where}: {tag}body.model must be a string, found {kind(model)}")
        ok = False
    n = body.get("n", 1)
    if n != 1:
        problems.append(f"{where}: {tag}body.n must be 1 (one reply per request), found {n!r}")
        ok = False
    mt = body.get("max_tokens", body.get("max_completion_tokens"))
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        problems.append(f"{where}: {tag}body.max_tokens must be a positive integer, found {mt!r}")
        ok = False
    if messages is None or not ok:
        return None
    params = {k: v for k, v in body.items() if k not in _RESERVED_BODY}
    return messages, params, model


def simple_record(rec: dict[str, Any], where: str, label: str, problems: list[str]):
    tag = f"{label}: " if label else ""
    ok = True
    system = rec.get("system")
    if system is not None and not isinstance(system, str):
        problems.append(f"{where}: {tag}system must be a string, found {kind(system)}")
        ok = False
    if "prompt" not in rec:
        problems.append(f"{where}: {tag}missing field prompt")
        return None
    prompt = rec["prompt"]
    if not isinstance(prompt, str):
        problems.append(f"{where}: {tag}prompt must be a string, found {kind(prompt)}")
        return None
    if not prompt.strip():
        problems.append(f"{where}: {tag}empty prompt")
        return None
    if not ok:
        return None
    messages: tuple[dict[str, Any], ...] = ({"role": "system", "content": system},) if system else ()
    return messages + ({"role": "user", "content": prompt},), {}, None


def messages_of(body: dict[str, Any], where: str, tag: str, problems: list[str]):
    if "messages" not in body:
        problems.append(f"{where}: {tag}missing field body.messages")
        return None
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        problems.append(f"{where}: {tag}body.messages must be a non-empty list, found "
                        f"{kind(messages) if not isinstance(messages, list) else 'an empty list'}")
        return None
    ok = True
    users = 0
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"{where}: {tag}body.messages[{j}] must be an object, found {kind(m)}")
            ok = False
            continue
        role = m.get("role")
        if role not in _ROLES:
            problems.append(f"{where}: {tag}body.messages[{j}].role must be one of "
                            f"{sorted(_ROLES)}, found {role!r}")
            ok = False
        content = m.get("content")
        if role == "user":
            users += 1
            if not isinstance(content, (str, list)):
                problems.append(f"{where}: {tag}body.messages[{j}].content must be a string or a list "
                                f"of parts, found {kind(content)}")
                ok = False
            elif not text_of(content).strip():
                problems.append(f"{where}: {tag}empty prompt (body.messages[{j}] has no text)")
                ok = False
    if ok and users == 0:
        problems.append(f"{where}: {tag}body.messages has no user message")
        ok = False
    return tuple(messages) if ok else None
