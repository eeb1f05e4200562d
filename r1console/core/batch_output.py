"""The final batch output, written once every item has a record, atomically.

Atomically means: temp file in the same directory, ``fsync``, ``rename``, ``fsync`` of the directory.

* ``seed``: the seed's ``output_responses.json`` —
  ``[{"question_tag", "response": {"reasoning", "final"}}]`` — but **in input order**
  (the seed wrote completion order). A failed request reads like the seed's:
  ``{"reasoning": "[ERROR]", "final": "[ERROR] <message>"}``.
* ``openai``: OpenAI batch output JSONL as ``vllm run-batch`` writes it (docs/facts.md §2.8):
  ``{"id", "custom_id", "response": {"status_code", "request_id", "body": <chat.completion>},
  "error"}``, one line per input line, in input order.

Like the journal, this module only does I/O on local files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from r1console.core.batch_input import BatchItem
from r1console.core.batch_record import RequestRecord
from r1console.core.errors import R1Error

OUTPUT_FORMATS = ("seed", "openai")


def fsync_dir(path: Path) -> None:
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as err:
        raise R1Error(f"{p}: cannot write: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise R1Error(f"{p}: cannot write: {err.strerror}") from None
        raise
    fsync_dir(p.parent)


def _require_all(items: Sequence[BatchItem], records: Mapping[str, RequestRecord]) -> None:
    """An output file is written only once every item has its record."""
    missing = [item.id for item in items if item.id not in records]
    if missing:
        raise R1Error(f"{len(missing)} requests have no result yet (first: {missing[0]!r})")


def seed_output(items: Sequence[BatchItem], records: Mapping[str, RequestRecord]) -> list[dict[str, Any]]:
    """The seed's ``output_responses.json`` list, in input order."""
    _require_all(items, records)
    out = []
    for item in items:
        rec = records[item.id]
        if rec.ok:
            response = {"reasoning": rec.reasoning, "final": rec.content}
        else:
            message = (rec.error or {}).get("message") or "failed"
            response = {"reasoning": "[ERROR]", "final": f"[ERROR] {message}"}
        out.append({"question_tag": item.id, "response": response})
    return out


def openai_output_lines(items: Sequence[BatchItem], records: Mapping[str, RequestRecord]
                        ) -> list[dict[str, Any]]:
    """OpenAI batch output records (``vllm run-batch``'s shape), in input order."""
    _require_all(items, records)
    out = []
    for item in items:
        rec = records[item.id]
        rid = rec.response_id or f"chatcmpl-{rec.record_id}"
        if rec.ok:
            body = {
                "id": rid,
                "object": "chat.completion",
                "created": int(rec.finished_at or 0),
                "model": rec.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": rec.content,
                                "reasoning": rec.reasoning, "reasoning_content": rec.reasoning},
                    "logprobs": None,
                    "finish_reason": rec.finish_reason,
                }],
                "usage": rec.usage,
            }
            line = {"id": f"vllm-{rec.record_id}", "custom_id": item.id,
                    "response": {"status_code": 200, "request_id": rid, "body": body}, "error": None}
        else:
            err = rec.error or {}
            status = err.get("status")
            line = {
                "id": f"vllm-{rec.record_id}", "custom_id": item.id,
                "response": ({"status_code": status, "request_id": rid, "body": None}
                             if isinstance(status, int) else None),
                "error": {"message": err.get("message") or "failed", "type": err.get("type"),
                          "code": status},
            }
        out.append(line)
    return out


def write_output(path: str | Path, fmt: str, items: Sequence[BatchItem],
                 records: Mapping[str, RequestRecord]) -> None:
    """Write the final output in ``fmt`` (``seed`` or ``openai``) atomically."""
    if fmt == "seed":
        text = json.dumps(seed_output(items, records), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "openai":
        text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in openai_output_lines(items, records))
    else:
        raise R1Error(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    atomic_write_text(path, text)


def default_output_format(input_format: str, output: str | Path) -> str:
    """``seed`` input → seed output, OpenAI batch input → OpenAI batch output; simple JSONL
    follows OUTPUT's extension (``.jsonl`` → openai, else seed)."""
    if input_format in OUTPUT_FORMATS:
        return input_format
    return "openai" if str(output).endswith(".jsonl") else "seed"


def records_in_order(items: Iterable[BatchItem], records: Mapping[str, RequestRecord]) -> list[RequestRecord]:
    return [records[i.id] for i in items if i.id in records]
