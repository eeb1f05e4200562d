"""The shared parts of batch input validation: how a problem is worded and raised.

Every format's parser collects its problems (``file:line: ...``) in a list and raises them
together through :func:`raise_problems` as one :class:`~r1console.core.errors.ConfigError`.
"""

from __future__ import annotations

from typing import Any

from r1console.core.errors import ConfigError

MAX_PROBLEMS_SHOWN = 20
NOTHING_SENT = "nothing was sent; fix the file and run again"


def formats_hint() -> str:
    return ('expected the seed\'s input_prompts.json {"system_prompt", "user_prompts": [{"question_tag", '
            '"content"}]}, OpenAI batch JSONL {"custom_id", "body": {"messages"}} per line, '
            'or JSONL {"id", "prompt"} per line')


def lone_surrogate(value: Any, path: str) -> tuple[str, str] | None:
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
            found = lone_surrogate(k, f"{path}.{k!s}" if path else str(k)) if isinstance(k, str) else None
            found = found or lone_surrogate(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = lone_surrogate(v, f"{path}[{i}]")
            if found:
                return found
    return None


def surrogate_problem(value: Any, label: str, where: str, problems: list[str]) -> bool:
    found = lone_surrogate(value, label)
    if found is None:
        return False
    field, code = found
    problems.append(f"{where}: {field or 'the record'} holds a lone surrogate {code} (half of a UTF-16 "
                    "pair, e.g. a cut emoji or a broken \\u escape): it cannot be sent as UTF-8; "
                    "complete or remove it")
    return True


def id_value(rec: dict[str, Any], key: str, where: str, label: str, problems: list[str]) -> str | None:
    prefix = f"{label}: " if label else ""
    if key not in rec:
        problems.append(f"{where}: {prefix}missing field {key}")
        return None
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append(f"{where}: {prefix}{key} must be a string, found {kind(value)}")
        return None
    text = str(value)
    if not text.strip():
        problems.append(f"{where}: {prefix}{key} is empty")
        return None
    return text


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def raise_problems(problems: list[str], hint: str = NOTHING_SENT) -> None:
    if problems:
        raise problems_error(problems, hint)


def problems_error(problems: list[str], hint: str = NOTHING_SENT) -> ConfigError:
    """One :class:`ConfigError` listing ``problems`` (the first :data:`MAX_PROBLEMS_SHOWN` of them)."""
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    return ConfigError(shown, hint=hint)
