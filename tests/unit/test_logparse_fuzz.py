"""Property tests: chunking never changes the events; any bytes are safe; memory stays bounded."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1console.core import logparse as lp

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
REAL = sorted(p for p in LOGS.rglob("*") if p.is_file() and p.parent != LOGS and p.suffix != ".py"
              and p.name not in ("EXPECTED.json", "README.md"))
DATA = {p: p.read_bytes() for p in REAL}
ONE_READ = {p: lp.parse_bytes(d, "s") for p, d in DATA.items()}

# R1C_FUZZ_EXAMPLES=2000 for a longer run; the default keeps the unit suite fast.
FAST = settings(max_examples=int(os.environ.get("R1C_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Bytes that matter to the parser: terminators, ESC, prefixes, needles, invalid UTF-8.
PIECES = [b"\n", b"\r", b"\r\n", b"\x1b[1;36m", b"\x1b[0;0m", b"\x1b[", b"(APIServer pid=1) ",
          b"(RayWorkerWrapper pid=2, ip=10.0.0.2) ", b"INFO 06-03 21:42:15 [a.py:1] ", b"INFO:     ",
          b"ERROR 06-03 21:42:15 [a.py:1] ", b"Loading safetensors checkpoint shards: ",
          b" 50% Completed | 1/2 [00:01<00:01,  1.00s/it]", b"Starting vLLM server on http://h:1",
          b"OSError: [Errno 98] Address already in use", b"EngineDeadError", b"[repeated 3x across cluster]",
          b"ValueError: x", b"\xff", b"\xc3", b"\xe2\x96", b"version 1.2", b" ", b"a", b"0"]


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(len(data), c) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def parse_chunks(chunks: list[bytes], max_segment: int = lp.MAX_SEGMENT) -> list[lp.Event]:
    p = lp.LogParser("s", max_segment=max_segment)
    got: list[lp.Event] = []
    for c in chunks:
        got += p.feed(c)
        assert len(p._buf) <= p.max_segment
    return got + p.flush()


@FAST
@given(st.sampled_from(REAL), st.lists(st.integers(min_value=0, max_value=300_000), max_size=40))
def test_random_splits_of_real_logs_give_the_same_events(path, cuts):
    assert parse_chunks(chunks_of(DATA[path], cuts)) == ONE_READ[path]


@FAST
@given(st.sampled_from(REAL), st.integers(min_value=1, max_value=97))
def test_tiny_fixed_chunks_of_real_logs(path, size):
    data = DATA[path][:20_000]
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    assert parse_chunks(chunks) == lp.parse_bytes(data, "s")


@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0, max_value=3000), max_size=20))
def test_random_bytes_never_raise_and_split_invariant(data, cuts):
    one = lp.parse_bytes(data, "s")
    assert parse_chunks(chunks_of(data, cuts)) == one


@FAST
@given(st.lists(st.sampled_from(PIECES), max_size=120), st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
       st.sampled_from([1024, 1500, lp.MAX_SEGMENT]))
def test_structured_noise_split_invariant_with_small_segments(pieces, cuts, max_segment):
    data = b"".join(pieces)
    one = lp.parse_bytes(data, "s", max_segment=max_segment)
    assert parse_chunks(chunks_of(data, cuts), max_segment=max_segment) == one
    for ev in one:
        assert ev.offset < len(data) and (ev.lineno is None or ev.lineno >= 1)
