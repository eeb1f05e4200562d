"""The batch journal: the crash-safe record of finished requests.

One of the two core modules that do file I/O (with :mod:`~r1console.core.batch_output`) — on
purpose, and only on local files: a journal's guarantees are about ``write``/``fsync``/``rename``,
so they are kept in one small place next to the record format.

Journal
    ``OUTPUT.journal.jsonl``, append-only. Line 1 is a header
    (``{"journal": "r1console-batch", "version": 1, ...}``); every other line is one finished
    request (:class:`RequestRecord`), written with a single ``write`` and ``fsync``'d before the
    engine moves on, so a record is either entirely on disk or not at all.

    * A crash can leave a **torn last line** (no newline, half a JSON document): reading ignores
      it and :meth:`Journal.open` cuts it off before appending, so that request is simply redone.
      A bad line anywhere else is not a crash artefact and is reported with its line number.
    * **Dedup on read**: an id may appear more than once (a failed request redone on
      ``--resume``, or a prompt edited between runs). :meth:`JournalContents.final` picks, for
      an item, the first *ok* record sent with the same request (hash of messages + params),
      else the last failed one with the same request; records for other prompts are ignored.
    * An exclusive ``flock`` keeps two runs from appending to the same journal.
    * The file is 0600 (prompts and answers are private) and never opened through a symlink.
    * :meth:`Journal.append_async` writes from one writer thread, so a slow disk (NFS, Lustre)
      never stalls the event loop; records that queue up meanwhile share one ``write`` and one
      ``fsync`` (group commit). A failed write (disk full, …) is cut back off the file and
      raised as :class:`JournalWriteError`; every later append fails the same way.
    * The header records the run's ``settings`` (``--max-tokens``, the model) so that a
      ``--resume`` with other settings is refused instead of mixing answers
      (:func:`check_settings`).

The records are :class:`~r1console.core.batch_record.RequestRecord`; the final output written
from them lives in :mod:`r1console.core.batch_output`. Both names are re-exported here.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from r1console.core.batch_input import BatchItem
from r1console.core.batch_output import (
    OUTPUT_FORMATS,
    atomic_write_text,
    default_output_format,
    openai_output_lines,
    records_in_order,
    seed_output,
    write_output,
)
from r1console.core.batch_output import fsync_dir as _fsync_dir
from r1console.core.batch_record import RequestRecord
from r1console.core.errors import EXIT_ERROR, R1Error

# Moved names kept importable from here (the writers and the record type).
__all__ = [
    "JOURNAL_MAGIC", "JOURNAL_VERSION", "OUTPUT_FORMATS", "Journal", "JournalContents", "JournalWriteError",
    "RequestRecord", "atomic_write_text", "check_settings", "default_output_format", "journal_path_for",
    "openai_output_lines", "read_journal", "records_in_order", "seed_output", "write_output",
]

JOURNAL_MAGIC = "r1console-batch"
JOURNAL_VERSION = 1


class JournalWriteError(R1Error):
    """The journal could not be written (disk full, I/O error, quota): nothing more may be sent.
    What was recorded before is intact; ``--resume`` redoes the rest."""

    exit_code = EXIT_ERROR

    def __init__(self, path: Path, err: OSError, *, hint: str | None = None) -> None:
        self.path = path
        self.errno = err.errno
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "the disk is full" if err.errno == errno.ENOSPC else "the disk quota is exhausted"
        elif err.errno == errno.EFBIG:
            what = "File too large (the file size limit, ulimit -f, was reached)"
        else:
            what = err.strerror or str(err)
        super().__init__(f"{path}: cannot write the journal: {what}",
                         hint=hint or "free some space, then run the same command with --resume: "
                                      "finished requests are kept, the rest is sent again")


def check_settings(path: str | Path, recorded: Mapping[str, Any] | None, current: Mapping[str, Any],
                   unknown: Iterable[str] = ()) -> None:
    """Refuse to resume a journal whose answers were made with other run settings. Keys in
    ``unknown`` are not compared (e.g. the served model when the server was not asked)."""
    if recorded is None:
        return   # a journal from before settings were recorded: nothing to compare
    skip = set(unknown)
    diffs = [f"{key} {recorded.get(key)!r} (now {current.get(key)!r})"
             for key in sorted((set(recorded) | set(current)) - skip) if recorded.get(key) != current.get(key)]
    if diffs:
        raise R1Error(f"{path}: its answers were made with other settings: {'; '.join(diffs)}",
                      hint="resume with the same --max-tokens, --model and server, or write a new "
                           "run to another -o OUTPUT (or delete the journal to start over)")


def journal_path_for(output: str | Path) -> Path:
    """Where the journal of ``output`` lives: ``OUTPUT.journal.jsonl`` beside it."""
    out = Path(output)
    return out.with_name(out.name + ".journal.jsonl")


@dataclass
class JournalContents:
    """What a journal holds: its header and every record, in file order."""

    header: dict[str, Any] = field(default_factory=dict)
    records: list[RequestRecord] = field(default_factory=list)
    torn_tail: bool = False      # a partial last line was found (and is ignored)

    def by_id(self) -> dict[str, list[RequestRecord]]:
        out: dict[str, list[RequestRecord]] = {}
        for rec in self.records:
            out.setdefault(rec.id, []).append(rec)
        return out

    def final(self, item: BatchItem, _index: dict[str, list[RequestRecord]] | None = None
              ) -> RequestRecord | None:
        """The record that stands for ``item`` (see the module docstring), or None."""
        recs = (_index if _index is not None else self.by_id()).get(item.id, [])
        h = item.request_hash()
        same = [r for r in recs if r.request_hash == h]
        for r in same:
            if r.ok:
                return r
        return same[-1] if same else None

    def finals(self, items: Sequence[BatchItem]) -> dict[str, RequestRecord]:
        index = self.by_id()
        out = {}
        for item in items:
            rec = self.final(item, index)
            if rec is not None:
                out[item.id] = rec
        return out

    def done_ids(self, items: Sequence[BatchItem]) -> set[str]:
        """Items already answered (an ok record for the same request): ``--resume`` skips them."""
        return {i for i, r in self.finals(items).items() if r.ok}


def read_journal(path: str | Path) -> JournalContents:
    """Read a journal; a missing file is an empty journal."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return JournalContents()
    except OSError as err:
        raise R1Error(f"{p}: cannot read the journal: {err.strerror}") from None
    contents, _ = _parse(p, data)
    return contents


def _parse(path: Path, data: bytes) -> tuple[JournalContents, int]:
    """Parse journal bytes; return the contents and the length of the valid prefix."""
    contents = JournalContents()
    pos = 0
    lineno = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        last = end < 0
        raw = data[pos:] if last else data[pos:end]
        lineno += 1
        try:
            doc = json.loads(raw.decode("utf-8")) if raw.strip() else None
            if doc is not None and not isinstance(doc, dict):
                raise ValueError("not an object")
            if doc is not None:
                if lineno == 1 and doc.get("journal") == JOURNAL_MAGIC:
                    contents.header = doc
                    if doc.get("version") != JOURNAL_VERSION:
                        raise R1Error(f"{path}: journal version {doc.get('version')!r} is not "
                                      f"{JOURNAL_VERSION}",
                                      hint="finish it with the r1console that wrote it, or move it away")
                else:
                    contents.records.append(RequestRecord.from_json(doc))
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            if last:  # a torn tail: the crash happened during this write
                contents.torn_tail = True
                return contents, pos
            raise R1Error(f"{path}:{lineno}: damaged journal line ({err})",
                          hint="a crash only ever tears the last line; this one was changed by "
                               "something else. Remove that line to redo its request") from None
        if last:
            # Complete JSON without its newline: keep it; Journal.open adds the newline.
            return contents, n
        pos = end + 1
    return contents, n


class Journal:
    """An open, locked, append-only journal. Use :meth:`open`; :meth:`append` per record."""

    def __init__(self, path: Path, fd: int, contents: JournalContents) -> None:
        self.path = path
        self._fd: int | None = fd
        self.contents = contents
        self.appended = 0
        self.fsyncs = 0
        self._write = os.write          # tests replace it to simulate a full disk
        self._error: JournalWriteError | None = None
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, *, resume: bool, header: Mapping[str, Any] | None = None) -> Journal:
        """Open ``path`` for appending.

        Without ``resume`` an existing journal with records is an error (nothing is
        overwritten); with it, the records are read (torn tail cut off) and kept.
        """
        p = Path(path)
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise R1Error(f"{p}: the journal is a symbolic link; refusing to follow it") from None
            raise R1Error(f"{p}: cannot open the journal: {err.strerror}") from None
        try:
            try:
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)      # one written by an older r1console under umask 022
            except OSError:
                pass
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise R1Error(f"{p}: another r1console batch is writing this journal",
                              hint="wait for it to finish, or use another -o OUTPUT") from None
            data = _read_fd(fd)
            contents, valid = _parse(p, data)
            if contents.records and not resume:
                raise R1Error(f"{p} already holds {len(contents.records)} finished requests "
                              "from an earlier run",
                              hint="add --resume to continue it (done requests are skipped), "
                                   "or delete the journal to start over")
            if not resume and data:
                os.ftruncate(fd, 0)
                data, valid, contents = b"", 0, JournalContents()
            if valid < len(data):
                os.ftruncate(fd, valid)       # cut the torn tail
                data = data[:valid]
            if data and not data.endswith(b"\n"):
                os.write(fd, b"\n")
            if not data:
                hdr = {"journal": JOURNAL_MAGIC, "version": JOURNAL_VERSION,
                       "created": time.time(), **dict(header or {})}
                os.write(fd, _line(hdr))
                contents.header = hdr
            os.fsync(fd)
            _fsync_dir(p.parent)
        except BaseException:
            os.close(fd)
            raise
        return cls(p, fd, contents)

    def append(self, record: RequestRecord) -> None:
        """Write one record and ``fsync`` it before returning (blocking; see :meth:`append_async`)."""
        self._commit([_line(record.to_json())])
        self.contents.records.append(record)
        self.appended += 1

    def _commit(self, lines: list[bytes]) -> None:
        """One ``write`` + ``fsync`` of ``lines``; on failure cut them off again and raise
        :class:`JournalWriteError` (then and for every later call)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._fd is None:
                raise RuntimeError("journal is closed")
            data = b"".join(lines)
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(data):
                    written += self._write(self._fd, data[written:])
                os.fsync(self._fd)
                self.fsyncs += 1
            except OSError as err:
                try:
                    os.ftruncate(self._fd, start)   # no half record in the middle of the file
                except OSError:
                    pass
                self._error = JournalWriteError(self.path, err)
                raise self._error from None

    def append_async(self, record: RequestRecord) -> asyncio.Future:
        """Queue ``record`` for the writer thread; the future resolves once it is on disk
        (``fsync``'d), or fails with :class:`JournalWriteError`. Call from the event loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        if self._error is not None:
            fut.set_exception(self._error)
            return fut
        if self._thread is None:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._writer, name="r1c-journal", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put((loop, fut, record, _line(record.to_json())))
        return fut

    def _writer(self) -> None:
        assert self._queue is not None
        q = self._queue
        while True:
            first = q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:                       # everything queued meanwhile: one write, one fsync
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._commit([b[3] for b in batch])
                error = None
            except (JournalWriteError, RuntimeError) as err:
                error = err
            for loop, fut, record, _ in batch:
                try:
                    loop.call_soon_threadsafe(self._resolve, fut, record, error)
                except RuntimeError:
                    pass                      # the loop is closed: nobody waits any more
            if stop:
                return

    def _resolve(self, fut: asyncio.Future, record: RequestRecord, error: BaseException | None) -> None:
        if error is None:
            self.contents.records.append(record)
            self.appended += 1
        if fut.done():
            return
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)

    def close(self) -> None:
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)           # writes queued before this still happen
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    parts = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        parts.append(chunk)
    return b"".join(parts)
