"""The seed's ``input_prompts.json`` format: one JSON document
``{"system_prompt": "...", "user_prompts": [{"question_tag": "q1", "content": "..."}, ...]}``.

``system_prompt`` is optional (an empty one sends no system message). Problems name the line of
each ``user_prompts`` element, found by walking the document once more (:func:`seed_item_positions`).
"""

from __future__ import annotations

import json
from typing import Any

from r1console.core.batch_input_checks import id_value, kind, line_at, raise_problems, surrogate_problem
from r1console.core.batch_items import BatchInput, BatchItem


def parse_seed(text: str, doc: dict[str, Any], source: str) -> BatchInput:
    problems: list[str] = []
    positions = seed_item_positions(text)
    system = _seed_system(text, doc, source, problems)
    prompts = _seed_prompts(text, doc, source, problems)
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    sys_msgs: tuple[dict[str, Any], ...] = ({"role": "system", "content": system},) if system else ()
    for i, entry in enumerate(prompts):
        line = positions[i] if i < len(positions) else None
        where = f"{source}:{line}" if line else source
        found = _seed_entry(entry, f"user_prompts[{i}]", where, problems)
        if found is None:
            continue
        tag, content = found
        if tag in seen:
            first = seen[tag]
            problems.append(f"{where}: duplicate question_tag {tag!r} (first at line {first})"
                            if first else f"{where}: duplicate question_tag {tag!r}")
            continue
        seen[tag] = line or 0
        if content is not None:
            items.append(BatchItem(id=tag, index=len(items),
                                   messages=sys_msgs + ({"role": "user", "content": content},),
                                   line=line))
    raise_problems(problems)
    return BatchInput(source=source, format="seed", items=tuple(items), system_prompt=system or None)


def _seed_system(text: str, doc: dict[str, Any], source: str, problems: list[str]) -> str | None:
    """The valid ``system_prompt``, or None (absent, or a problem was recorded)."""
    system = doc.get("system_prompt")
    if system is None:
        return None
    if not isinstance(system, str):
        problems.append(f"{source}:{key_line(text, 'system_prompt')}: system_prompt must be a string, "
                        f"found {kind(system)}")
        return None
    if surrogate_problem(system, "system_prompt", f"{source}:{key_line(text, 'system_prompt')}", problems):
        return None
    return system


def _seed_prompts(text: str, doc: dict[str, Any], source: str, problems: list[str]) -> list[Any]:
    """The ``user_prompts`` list (empty when missing or not a list, with a problem recorded)."""
    if "user_prompts" not in doc:
        problems.append(f"{source}:1: missing field user_prompts (a list of "
                        '{"question_tag", "content"})')
        return []
    prompts = doc["user_prompts"]
    if not isinstance(prompts, list):
        problems.append(f"{source}:{key_line(text, 'user_prompts')}: user_prompts must be a list, "
                        f"found {kind(prompts)}")
        return []
    if not prompts:
        problems.append(f"{source}:{key_line(text, 'user_prompts')}: user_prompts is empty: no prompts")
    return prompts


def _seed_entry(entry: Any, label: str, where: str, problems: list[str]) -> tuple[str, str | None] | None:
    """``(tag, content)`` of one ``user_prompts`` element; content is None when it is unusable
    (the problem is recorded, the tag still counts for duplicates); None without a usable tag."""
    if not isinstance(entry, dict):
        problems.append(f"{where}: {label} must be an object {{\"question_tag\", \"content\"}}, "
                        f"found {kind(entry)}")
        return None
    if surrogate_problem(entry, label, where, problems):
        return None
    tag = id_value(entry, "question_tag", where, label, problems)
    content = entry.get("content")
    named = f"{label} ({tag!r})" if tag else label
    if "content" not in entry:
        problems.append(f"{where}: {named}: missing field content")
    elif not isinstance(content, str):
        problems.append(f"{where}: {named}: content must be a string, found {kind(content)}")
    elif not content.strip():
        problems.append(f"{where}: {named}: empty prompt (content is blank)")
    if tag is None:
        return None
    return tag, content if isinstance(content, str) and content.strip() else None


def seed_item_positions(text: str) -> list[int]:
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
                    out.append(line_at(text, i))
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


def key_line(text: str, key: str) -> int:
    pos = text.find(json.dumps(key))
    return line_at(text, pos) if pos >= 0 else 1
