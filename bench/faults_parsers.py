"""Audit row 17: hypothesis examples against every parser of cluster / server output.

Each parser may return or raise its own ``*ParseError`` (an R1Error the CLI prints cleanly); any
other exception is a crash (a traceback in the CLI, a dead worker in the TUI). Each call must also
stay under 50 ms (e.g. a hostlist like ``n[1-100000][1-100000]`` must be refused, not expanded).
Inputs are built from the pieces that matter to these parsers (digits, non-ASCII digits like ``²``,
brackets, separators, JSON fragments, huge numbers) plus arbitrary text.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import faultlib
from faultlib import Row, row

#: The child that runs the examples may use at most this much memory: a parser that expands its
#: input without bound (the audit's hostlist n[1-100000][1-100000]) hits MemoryError there instead
#: of taking the machine (measured before this limit: 22 GB and the OOM killer).
MEMORY_LIMIT = 1 << 30

PIECES = ["0", "1", "9", "42", "²", "٣", "-", "+", ":", "=", ",", ";", "|", "[", "]", "{", "}", "(", ")", '"', "'",
          "\n", "\r\n", "\t", " ", "n", "node", "gpu", "gres/gpu", "gpu:4", "1-3", "1-100000", "[1-100000]",
          "Infinity", "NaN", "1e20", "-1", "99999999999999999999", "00:10:00", "1-00:00:00", "UNLIMITED",
          "RUNNING", "PENDING", "CANCELLED+", "JobId=", "JobState=", "TRES=", "le=", '{le="abc"}', "# TYPE ",
          "# HELP ", "vllm:num_requests_running", "_bucket", " 1.5", "data: ", "retry: ", "id: ", "event: ",
          "[DONE]", "\x00", "\ufeff", "\ud83d", "MiB", " %", "[N/A]", "Not Supported", "errors", '"jobs": [',
          '{"job_id": ', '"job_state": ["RUNNING"]', '"time": {"start": ', '"number": ', '"set": true',
          '"infinite": false', "INFO 06-03 21:42:15 [a.py:1] ", "Loading safetensors checkpoint shards: ",
          " 50% Completed | 1/2 [00:01<00:01,  1.00s/it]", "\x1b[1;36m", "\xff"]


def _parsers():
    from r1console.core import logparse, nvidia_smi, prometheus, slurm_parse, sse
    from r1console.core.api_errors import ProtocolError

    sp = slurm_parse.SlurmParseError
    return [
        ("slurm_parse.parse_duration", slurm_parse.parse_duration, (sp,)),
        ("slurm_parse.expand_hostlist", slurm_parse.expand_hostlist, (sp,)),
        ("slurm_parse.parse_squeue_json", slurm_parse.parse_squeue_json, (sp,)),
        ("slurm_parse.parse_squeue_format", slurm_parse.parse_squeue_format, (sp,)),
        ("slurm_parse.parse_scontrol_jobs", slurm_parse.parse_scontrol_jobs, (sp,)),
        ("slurm_parse.parse_sacct", slurm_parse.parse_sacct, (sp,)),
        ("slurm_parse.tres_gpus", slurm_parse.tres_gpus, (sp,)),
        ("nvidia_smi.parse_query", lambda t: nvidia_smi.parse_query(t, "node1"), (nvidia_smi.NvidiaSmiParseError,)),
        ("nvidia_smi.parse_labelled", lambda t: nvidia_smi.parse_labelled(t, ["node1", "node2"]),
         (nvidia_smi.NvidiaSmiParseError,)),
        ("prometheus.parse_metrics", prometheus.parse_metrics, (prometheus.MetricsParseError,)),
        ("sse.parse_sse", lambda t: sse.parse_sse(t.encode("utf-8", "surrogatepass")), (ProtocolError,)),
        ("logparse.parse_bytes", lambda t: logparse.parse_bytes(t.encode("utf-8", "surrogatepass"), "out"), ()),
    ]


def _examples(runs: int) -> dict:
    """Runs in a child process (see :func:`parsers`); returns crashes and the slowest call per parser."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    text = st.one_of(
        st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
        st.text(max_size=200),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
                         st.sampled_from(["jobs", "job_id", "job_state", "time", "start", "number", "set",
                                          "infinite", "nodes", "errors", "meta", "tres_per_node", "partition"]),
                         kids, max_size=5), max_leaves=20).map(lambda v: json.dumps(v, allow_nan=True)),
    )
    crashes: dict[str, list[str]] = {}
    slowest: dict[str, float] = {}
    examples = 0
    def make(name, func, allowed):
        @settings(max_examples=runs, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(text)
        def prop(value):
            nonlocal examples
            examples += 1
            started = time.perf_counter()
            try:
                func(value)
            except allowed:
                pass
            except Exception as err:  # noqa: BLE001 - that is what the row counts
                found = crashes.setdefault(name, [])
                if len(found) < 3:
                    found.append(f"{type(err).__name__}: {str(err)[:80]} on {value[:60]!r}")
            slowest[name] = max(slowest[name], time.perf_counter() - started)

        return prop

    for name, func, allowed in _parsers():
        slowest[name] = 0.0
        make(name, func, allowed)()
    return {"examples": examples, "crashes": crashes, "slowest": slowest}


_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path.insert(0, {bench!r})
import faults_parsers
print(json.dumps(faults_parsers._examples({runs})))
"""


async def parsers(runs: int) -> dict:
    fault = f"hypothesis {runs} examples per parser"
    code = _CHILD.format(limit=MEMORY_LIMIT, bench=str(faultlib.REPO / "bench"), runs=runs)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE,
                                                env={**os.environ, "PYTHONPATH": str(faultlib.REPO)})
    out, err = await proc.communicate()
    if proc.returncode != 0:
        return row(fault, runs, lost=None, duplicated=None, passed=False,
                   detail=f"the example run died (rc {proc.returncode}): {err.decode(errors='replace')[-400:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    crashes, slowest = result["crashes"], result["slowest"]
    too_slow = {k: v for k, v in slowest.items() if v > 0.05}
    detail = (f"{result['examples']} examples over {len(slowest)} parsers (child limited to "
              f"{MEMORY_LIMIT >> 20} MiB); "
              + ("crashes: " + "; ".join(f"{k}: {v}" for k, v in crashes.items()) if crashes else "no crash")
              + ("; slower than 50 ms: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in too_slow.items())
                 if too_slow else f"; slowest call {max(slowest.values()) * 1000:.1f} ms"))
    return row(fault, runs, lost=None, duplicated=None, passed=not crashes and not too_slow, detail=detail)


# 2,000 per parser (not the audit's 10,000): each hostlist blow-up costs ~14 s until MemoryError today
ROWS = [Row("parsers", "parse", parsers, default_runs=2_000, cheap=False)]
