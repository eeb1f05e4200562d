"""Property tests of every parser of outside text: whatever the input, only the module's own ParseError.

slurm_parse / slurm_json -> SlurmParseError, nvidia_smi -> NvidiaSmiParseError, prometheus ->
MetricsParseError; sse and logparse never raise (they have no error to report: odd bytes are
skipped or become U+FFFD). Inputs mix random text with the characters and fragments each format
is built from (digits of other scripts such as '²' and '٣' included: ``str.isdigit()`` accepts
them, ``int()`` does not), and random JSON built from each schema's own keys.

Examples per test: ``R1C_PROPERTY_EXAMPLES`` (default 300, what CI runs; the issue's 10,000-example
runs set it, one parser at a time with ``-k``).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from r1console.core import logparse, nvidia_smi, prometheus, slurm_json, slurm_parse, sse

EXAMPLES = int(os.environ.get("R1C_PROPERTY_EXAMPLES", "300"))
# R1C_PROPERTY_NO_SHRINK=1: report the failing inputs as found (quicker when hunting several bugs)
_PHASES = [Phase.explicit, Phase.generate] if os.environ.get("R1C_PROPERTY_NO_SHRINK") == "1" else list(Phase)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, phases=_PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ODD_DIGITS = "²³¹٣۴०१༣"
NUMBERISH = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from(["", "0", "-1", "1e400", "NaN", "inf", ODD_DIGITS, "5²", "12:34", "1-00:00:00"]))


def fragments(*pieces: str) -> st.SearchStrategy[str]:
    """Text glued from format fragments, odd digits and random characters."""
    atom = st.one_of(st.sampled_from(list(pieces) + list(ODD_DIGITS) + ["\n", "\r", "\t", " ", ",", "=", ":", "[", "]",
                                                                         "-", "_", "/", "(", ")", "{", "}", '"']),
                     st.text(max_size=8), st.integers(-10**12, 10**12).map(str))
    return st.lists(atom, max_size=40).map("".join)


def json_values(keys: list[str]) -> st.SearchStrategy:
    scalars = st.one_of(st.none(), st.booleans(), NUMBERISH, st.text(max_size=12),
                        st.sampled_from(["RUNNING", "PENDING", "COMPLETED", "CANCELLED by 0", "CA", "TIMEOUT"]))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(keys), inner, max_size=5)), max_leaves=10)


def expect_only(error: type[Exception] | None, func, *args) -> None:
    try:
        func(*args)
    except Exception as err:  # noqa: BLE001 - the property: nothing else escapes
        if error is None or not isinstance(err, error):
            raise AssertionError(f"{func.__name__} raised {type(err).__name__}: {err!r} for {args!r}"[:2000]) from err


# ---- slurm_parse / slurm_json ---------------------------------------------------------------------

JOB_KEYS = ["job_id", "name", "job_state", "state", "current", "reason", "state_reason", "start_time", "end_time",
            "submit_time", "time_limit", "time", "start", "end", "elapsed", "limit", "submission", "set", "infinite",
            "number", "nodes", "node_count", "allocation_nodes", "batch_host", "partition", "exit_code",
            "return_code", "signal", "id", "status", "array", "task_id", "array_job_id", "array_task_id",
            "job_resources", "tres", "allocated", "type", "count", "user", "user_name", "working_directory",
            "current_working_directory", "standard_output", "stdout", "stdout_expanded", "meta", "Slurm", "release",
            "version", "major", "minor", "errors", "description", "jobs"]


JOB_VALUES = json_values(JOB_KEYS)  # built once: a strategy per draw costs more than the parsing
JOBS = st.lists(st.dictionaries(st.sampled_from(JOB_KEYS), JOB_VALUES, max_size=10), max_size=2)


@st.composite
def job_documents(draw) -> str:
    doc = {"meta": draw(JOB_VALUES), "jobs": draw(JOBS), "errors": draw(JOB_VALUES)}
    if draw(st.booleans()):
        doc = draw(JOB_VALUES)  # any shape at all
    return json.dumps(doc, allow_nan=True)


@SETTINGS
@given(st.one_of(job_documents(), fragments('{"jobs": [', '{"job_state": ', '"state": {"current": ', "]}", "null")))
def test_slurm_json_documents(text):
    expect_only(slurm_parse.SlurmParseError, slurm_parse.parse_squeue_json, text)
    expect_only(slurm_parse.SlurmParseError, slurm_json.parse_jobs_json, text)
    slurm_json.document_release(text)  # never raises
    slurm_parse.squeue_json_version(text)


SLURM_TEXT = fragments("JobId=", "JobState=", "RUNNING", "PENDING", "NodeList=", "node[1-3,05]", "n[1-100000]",
                       "BatchHost=", "TimeLimit=", "RunTime=", "UNLIMITED", "TRES=", "gres/gpu=", "ArrayJobId=",
                       "ArrayTaskId=", "ExitCode=", "0:9", slurm_parse.SQUEUE_SEP, "JobID", "State", "Elapsed",
                       "1-02:03:04", "None", "(null)", "1234;cluster", "CANCELLED by 0")


@SETTINGS
@given(SLURM_TEXT)
def test_slurm_text_outputs(text):
    err = slurm_parse.SlurmParseError
    expect_only(err, slurm_parse.parse_scontrol_jobs, text)
    expect_only(err, slurm_parse.parse_squeue_format, text)
    expect_only(err, slurm_parse.parse_sacct, text)
    expect_only(err, slurm_parse.parse_sbatch_parsable, text)
    expect_only(err, slurm_parse.parse_duration, text)
    expect_only(err, slurm_parse.expand_hostlist, text)
    expect_only(err, slurm_parse.tres_gpus, text)


# ---- nvidia-smi -----------------------------------------------------------------------------------

NVSMI_TEXT = fragments("0", "1", "NVIDIA H200", "GPU-1234", "MiB", "W", "%", "[N/A]", "[Not Supported]", ", ",
                       "0: ", "12: ", "index, name, memory.used [MiB]", "timestamp", "|   0  NVIDIA L40S    On  |",
                       "| N/A   39C    P0   104W /  325W |   803MiB /  46068MiB |   0%   Default |",
                       "+-----+", "NVIDIA-SMI 580")


@SETTINGS
@given(NVSMI_TEXT)
def test_nvidia_smi_outputs(text):
    err = nvidia_smi.NvidiaSmiParseError
    expect_only(err, nvidia_smi.parse_any, text, "n1")
    expect_only(err, nvidia_smi.parse_query, text, "n1")
    expect_only(err, nvidia_smi.parse_labelled, text, ["n1", "n2"])
    expect_only(err, nvidia_smi.parse_table, text, "n1")
    expect_only(err, nvidia_smi.parse_csv_with_header, text, "n1")


# ---- prometheus -----------------------------------------------------------------------------------

PROM_TEXT = fragments("vllm:num_requests_running", "vllm:time_to_first_token_seconds_bucket", "_sum", "_count",
                      '{le="0.5"}', '{le="+Inf"}', '{le="abc"}', '{model_name="m"}', " 1", " NaN", " +Inf", " -Inf",
                      " 1e400", "# HELP x y", "# TYPE x histogram", '{a="\\"q\\""}', " 12 1700000000000")


@SETTINGS
@given(PROM_TEXT)
def test_prometheus_metrics(text):
    def parse_and_read(t: str):
        metrics = prometheus.parse_metrics(t)
        server = prometheus.ServerMetrics.from_metric_set(metrics, at=1.0)
        later = prometheus.ServerMetrics.from_text(t, at=2.0)
        return prometheus.rates(server, later)

    expect_only(prometheus.MetricsParseError, parse_and_read, text)


# ---- sse ------------------------------------------------------------------------------------------

SSE_TEXT = fragments("data: ", "event: ", "id: ", "retry: ", "retry: 5²", ": comment", "[DONE]", '{"choices": []}',
                     "\n\n", "\r\n", "data:")


@SETTINGS
@given(st.one_of(SSE_TEXT, SSE_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
def test_sse_payloads(payload):
    expect_only(None, sse.parse_sse, payload)


# ---- logparse -------------------------------------------------------------------------------------

LOG_TEXT = fragments("INFO 06-03 21:42:15 [a.py:1] ", "ERROR 06-03 21:42:15 [a.py:1] ", "(APIServer pid=1) ",
                     "Traceback (most recent call last):", "  File \"x.py\", line 1", "ValueError: x",
                     "ray.exceptions.RayTaskError(OutOfMemoryError): y", "[r1console] ray_ready nodes=² gpus=٣",
                     "[r1console] port port=²", "[r1console] FATAL ray_timeout m", "Loading safetensors checkpoint "
                     "shards:  50% Completed | 1/2 [00:01<00:01,  1.00s/it]", "*** SIGTERM received at time=1 ***",
                     "Loading drafter model...", "Waiting for creating a placement group of specs for 10 seconds",
                     "\x1b[1;36m", "\x1b[0m", "vllm serve: error: the following arguments are required: m")


@SETTINGS
@given(LOG_TEXT, st.integers(1, 64))
def test_logparse_and_lifecycle(text, cut):
    from r1console.core.lifecycle import JobLifecycle

    def run(data: bytes):
        parser = logparse.LogParser("s")
        lc = JobLifecycle()
        for i in range(0, len(data), cut):
            lc.on_events(parser.feed(data[i:i + cut]))
        lc.on_events(parser.flush())
        lc.on_slurm_state("RUNNING")
        return lc.snapshot(now=1.0).to_dict()

    expect_only(None, run, text.encode("utf-8", "surrogatepass"))
