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
This module detects the format; the formats are read in :mod:`~r1console.core.batch_input_seed` and
:mod:`~r1console.core.batch_input_jsonl`, the shared wording of problems is
:mod:`~r1console.core.batch_input_checks`, the request types :mod:`~r1console.core.batch_items`.
"""

from __future__ import annotations

import json
from pathlib import Path

from r1console.core.batch_input_checks import (
    MAX_PROBLEMS_SHOWN,
    NOTHING_SENT,
    formats_hint,
    kind,
    line_at,
)
from r1console.core.batch_input_jsonl import CHAT_URL, parse_jsonl
from r1console.core.batch_input_seed import parse_seed
from r1console.core.batch_items import BatchInput, BatchItem
from r1console.core.errors import ConfigError, R1Error

# The request types and the constants that moved stay importable from here.
__all__ = [
    "CHAT_URL", "FORMATS", "MAX_PROBLEMS_SHOWN", "NOTHING_SENT", "BatchInput", "BatchItem",
    "load_batch_input", "parse_batch_input",
]

FORMATS = ("seed", "openai", "simple")


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
        raise ConfigError([f"{source}: the file is empty: no prompts"], hint=formats_hint())
    if stripped[0] == "[":
        raise ConfigError([f"{source}:{line_at(text, len(text) - len(stripped))}: a JSON list is not "
                           "a batch input"], hint=formats_hint())
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" or source.endswith(".jsonl"):
            return parse_jsonl(text, source)
        raise ConfigError([f"{source}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}"],
                          hint=NOTHING_SENT) from None
    if isinstance(doc, dict) and ("user_prompts" in doc or "system_prompt" in doc):
        return parse_seed(text, doc, source)
    if isinstance(doc, dict):
        return parse_jsonl(text, source)  # a one-line JSONL file
    raise ConfigError([f"{source}:1: expected a JSON object, found {kind(doc)}"], hint=formats_hint())
