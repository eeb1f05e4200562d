"""Batch input files: detect the format, validate the whole file, return the requests.

Three formats are read (docs/facts.md §1.4, §2.8):

``seed``
    The seed's ``input_prompts.json``: one JSON document
    ``{"system_prompt": "...", "user_prompts": [{"question_tag": "q1", "content": "..."}, ...]}``.
    ``system_prompt`` is optional (an empty one sends no system message — DeepSeek advises
    against system prompts for R1 anyway).
``openai``
    OpenAI batch JSONL as ``vllm run-batch`` takes it, one request per line:
    ``{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [...], ...}}``.
    Other ``body`` fields (``max_tokens``, ``temperature``, …) are sent as given; ``model`` is
    kept on the item (the runner decides whether the served model replaces it).
``simple``
    JSONL with ``{"id": "q1", "prompt": "..."}`` per line (optional ``"system"``).

The whole file is checked before anything is sent: invalid JSON, missing or mistyped fields,
duplicate ids/tags, empty prompts and lone UTF-16 surrogates (``"\\ud83d"``: a cut emoji,
which cannot be encoded, hashed or sent) are all collected and raised together as one
:class:`~r1console.core.errors.ConfigError`, each problem naming ``file:line`` and the tag.

Pure: :func:`parse_batch_input` takes text; :func:`load_batch_input` only reads the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from r1console.core.errors import ConfigError, R1Error

FORMATS = ("seed", "openai", "simple")
MAX_PROBLEMS_SHOWN = 20
CHAT_URL = "/v1/chat/completions"
_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Body fields the runner owns: the stream is always on, with usage.
_RESERVED_BODY = {"messages", "model", "stream", "stream_options"}
NOTHING_SENT = "nothing was sent; fix the file and run again"


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch. ``index`` is its position in the input (output order);
    ``line`` the 1-based line where it starts in the file."""

    id: str
    index: int
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    line: int | None = None

    def request_hash(self) -> str:
        """A digest of what is sent (messages + params + model): the journal uses it to redo
        an item whose prompt changed between a run and its ``--resume``."""
        doc = json.dumps({"m": list(self.messages), "p": dict(self.params), "model": self.model},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(doc.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @property
    def prompt(self) -> str:
        """The last user message's text (for display)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return _text_of(m.get("content"))
        return ""


@dataclass(frozen=True)
class BatchInput:
    source: str
    format: str
    items: tuple[BatchItem, ...]
    system_prompt: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


def load_batch_input(path: str | Path) -> BatchInput:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise R1Error(f"{p}: no such file") from None
    except IsADirectoryError:
        raise R1Error(f"{p}: is a directory, expected a batch input file") from None
    except OSError as err:
        raise R1Error(f"{p}: cannot read: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError([f"{p}:{line}: not UTF-8 text (byte {err.start})"], hint=NOTHING_SENT) from None
    return parse_batch_input(text, source=str(p))


def parse_batch_input(text: str, source: str = "<input>") -> BatchInput:
    """Detect the format of ``text`` and validate it all. See the module docstring."""
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError([f"{source}: the file is empty: no prompts"], hint=_formats_hint())
    if stripped[0] == "[":
        raise ConfigError([f"{source}:{_line_at(text, len(text) - len(stripped))}: a JSON list is not "
                           "a batch input"], hint=_formats_hint())
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" or source.endswith(".jsonl"):
            return _parse_jsonl(text, source)
        raise ConfigError([f"{source}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}"],
                          hint=NOTHING_SENT) from None
    if isinstance(doc, dict) and ("user_prompts" in doc or "system_prompt" in doc):
        return _parse_seed(text, doc, source)
    if isinstance(doc, dict):
        return _parse_jsonl(text, source)  # a one-line JSONL file
    raise ConfigError([f"{source}:1: expected a JSON object, found {_kind(doc)}"], hint=_formats_hint())


def _formats_hint() -> str:
    return ('expected the seed\'s input_prompts.json {"system_prompt", "user_prompts": [{"question_tag", '
            '"content"}]}, OpenAI batch JSONL {"custom_id", "body": {"messages"}} per line, '
            'or JSONL {"id", "prompt"} per line')


# -- seed format ---------------------------------------------------------------------------------

def _parse_seed(text: str, doc: dict[str, Any], source: str) -> BatchInput:
    problems: list[str] = []
    positions = _seed_item_positions(text)
    system = doc.get("system_prompt")
    if system is not None and not isinstance(system, str):
        problems.append(f"{source}:{_key_line(text, 'system_prompt')}: system_prompt must be a string, "
                        f"found {_kind(system)}")
        system = None
    elif system is not None and _surrogate_problem(system, "system_prompt",
                                                   f"{source}:{_key_line(text, 'system_prompt')}", problems):
        system = None
    prompts = doc.get("user_prompts")
    if "user_prompts" not in doc:
        problems.append(f"{source}:1: missing field user_prompts (a list of "
                        '{"question_tag", "content"})')
        prompts = []
    elif not isinstance(prompts, list):
        problems.append(f"{source}:{_key_line(text, 'user_prompts')}: user_prompts must be a list, "
                        f"found {_kind(prompts)}")
        prompts = []
    elif not prompts:
        problems.append(f"{source}:{_key_line(text, 'user_prompts')}: user_prompts is empty: no prompts")
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    sys_msgs: tuple[dict[str, Any], ...] = ({"role": "system", "content": system},) if system else ()
    for i, entry in enumerate(prompts):
        line = positions[i] if i < len(positions) else None
        where = f"{source}:{line}" if line else source
        label = f"user_prompts[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: {label} must be an object {{\"question_tag\", \"content\"}}, "
                            f"found {_kind(entry)}")
            continue
        if _surrogate_problem(entry, label, where, problems):
            continue
        tag = _id_value(entry, "question_tag", where, label, problems)
        content = entry.get("content")
        named = f"{label} ({tag!r})" if tag else label
        if "content" not in entry:
            problems.append(f"{where}: {named}: missing field content")
        elif not isinstance(content, str):
            problems.append(f"{where}: {named}: content must be a string, found {_kind(content)}")
        elif not content.strip():
            problems.append(f"{where}: {named}: empty prompt (content is blank)")
        if tag is None:
            continue
        if tag in seen:
            first = seen[tag]
            problems.append(f"{where}: duplicate question_tag {tag!r} (first at line {first})"
                            if first else f"{where}: duplicate question_tag {tag!r}")
            continue
        seen[tag] = line or 0
        if isinstance(content, str) and content.strip():
            items.append(BatchItem(id=tag, index=len(items),
                                   messages=sys_msgs + ({"role": "user", "content": content},),
                                   line=line))
    _raise(problems)
    return BatchInput(source=source, format="seed", items=tuple(items), system_prompt=system or None)


def _seed_item_positions(text: str) -> list[int]:
    """1-based line of each element of the top-level ``user_prompts`` list (best effort: an
    empty list when the document's shape is unexpected)."""
    dec = json.JSONDecoder()
    n = len(text)

    def ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    try:
        i = ws(0)
        if text[i] != "{":
            return []
        i = ws(i + 1)
        while i < n and text[i] != "}":
            key, i = dec.raw_decode(text, i)
            i = ws(i)
            if text[i] != ":":
                return []
            i = ws(i + 1)
            if key == "user_prompts" and text[i] == "[":
                out = []
                i = ws(i + 1)
                while i < n and text[i] != "]":
                    out.append(_line_at(text, i))
                    _, i = dec.raw_decode(text, i)
                    i = ws(i)
                    if text[i] == ",":
                        i = ws(i + 1)
                return out
            _, i = dec.raw_decode(text, i)
            i = ws(i)
            if text[i] == ",":
                i = ws(i + 1)
    except (ValueError, IndexError):
        return []
    return []


def _key_line(text: str, key: str) -> int:
    pos = text.find(json.dumps(key))
    return _line_at(text, pos) if pos >= 0 else 1


# -- JSONL formats -------------------------------------------------------------------------------

def _parse_jsonl(text: str, source: str) -> BatchInput:
    problems: list[str] = []
    records: list[tuple[int, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{source}:{lineno}:{err.colno}: invalid JSON: {err.msg}")
            continue
        if not _surrogate_problem(rec, "", f"{source}:{lineno}", problems):
            records.append((lineno, rec))
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
                            f"{source}:{records[0][0]}: expected a JSON object, found {_kind(records[0][1])}")
        _raise(problems, hint=_formats_hint())
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    key = "custom_id" if fmt == "openai" else "id"
    for lineno, rec in records:
        where = f"{source}:{lineno}"
        if not isinstance(rec, dict):
            problems.append(f"{where}: expected a JSON object, found {_kind(rec)}")
            continue
        rid = _id_value(rec, key, where, "", problems)
        label = f"{key} {rid!r}" if rid else ""
        parsed = (_openai_record if fmt == "openai" else _simple_record)(rec, where, label, problems)
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
    _raise(problems)
    return BatchInput(source=source, format=fmt, items=tuple(items))


def _openai_record(rec: dict[str, Any], where: str, label: str, problems: list[str]):
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
        problems.append(f"{where}: {tag}body must be an object, found {_kind(body)}")
        return None
    messages = _messages(body, where, tag, problems)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        problems.append(f"{where}: {tag}body.model must be a string, found {_kind(model)}")
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


def _simple_record(rec: dict[str, Any], where: str, label: str, problems: list[str]):
    tag = f"{label}: " if label else ""
    ok = True
    system = rec.get("system")
    if system is not None and not isinstance(system, str):
        problems.append(f"{where}: {tag}system must be a string, found {_kind(system)}")
        ok = False
    if "prompt" not in rec:
        problems.append(f"{where}: {tag}missing field prompt")
        return None
    prompt = rec["prompt"]
    if not isinstance(prompt, str):
        problems.append(f"{where}: {tag}prompt must be a string, found {_kind(prompt)}")
        return None
    if not prompt.strip():
        problems.append(f"{where}: {tag}empty prompt")
        return None
    if not ok:
        return None
    messages: tuple[dict[str, Any], ...] = ({"role": "system", "content": system},) if system else ()
    return messages + ({"role": "user", "content": prompt},), {}, None


def _messages(body: dict[str, Any], where: str, tag: str, problems: list[str]):
    if "messages" not in body:
        problems.append(f"{where}: {tag}missing field body.messages")
        return None
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        problems.append(f"{where}: {tag}body.messages must be a non-empty list, found "
                        f"{_kind(messages) if not isinstance(messages, list) else 'an empty list'}")
        return None
    ok = True
    users = 0
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"{where}: {tag}body.messages[{j}] must be an object, found {_kind(m)}")
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
                                f"of parts, found {_kind(content)}")
                ok = False
            elif not _text_of(content).strip():
                problems.append(f"{where}: {tag}empty prompt (body.messages[{j}] has no text)")
                ok = False
    if ok and users == 0:
        problems.append(f"{where}: {tag}body.messages has no user message")
        ok = False
    return tuple(messages) if ok else None


# -- helpers -------------------------------------------------------------------------------------

def _lone_surrogate(value: Any, path: str) -> tuple[str, str] | None:
    """``(field path, the surrogate as \\uXXXX)`` of the first string in ``value`` holding a lone
    UTF-16 surrogate (JSON allows ``"\\ud83d"`` alone; UTF-8 cannot encode it), else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return path, f"\\u{ord(value[err.start]):04x}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _lone_surrogate(k, f"{path}.{k!s}" if path else str(k)) if isinstance(k, str) else None
            found = found or _lone_surrogate(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _lone_surrogate(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _surrogate_problem(value: Any, label: str, where: str, problems: list[str]) -> bool:
    found = _lone_surrogate(value, label)
    if found is None:
        return False
    field, code = found
    problems.append(f"{where}: {field or 'the record'} holds a lone surrogate {code} (half of a UTF-16 "
                    "pair, e.g. a cut emoji or a broken \\u escape): it cannot be sent as UTF-8; "
                    "complete or remove it")
    return True


def _id_value(rec: dict[str, Any], key: str, where: str, label: str, problems: list[str]) -> str | None:
    prefix = f"{label}: " if label else ""
    if key not in rec:
        problems.append(f"{where}: {prefix}missing field {key}")
        return None
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append(f"{where}: {prefix}{key} must be a string, found {_kind(value)}")
        return None
    text = str(value)
    if not text.strip():
        problems.append(f"{where}: {prefix}{key} is empty")
        return None
    return text


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _raise(problems: list[str], hint: str = NOTHING_SENT) -> None:
    if not problems:
        return
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    raise ConfigError(shown, hint=hint)
