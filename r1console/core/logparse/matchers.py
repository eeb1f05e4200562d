"""What a cleaned log line means: the TABLE of matchers, one declaration per signature.

A :class:`Matcher` names the literal ``needles`` that every line it can match contains, and a
function ``(msg, base) -> events``. The parser only decodes lines that contain some needle of this
table or of ``core/fatal.py`` (:data:`NEEDLES`: built from both, never listed twice), then tries
each matcher whose needle is in the line, in table order; a ``final`` matcher that found events
ends the line (our script's markers and the seed's echo lines are nothing else). Fatal signatures
(``core/fatal.py``) are tried after the table by the parser, which gates them by log level.

``base`` holds the :class:`~r1console.core.logparse.events.Event` base fields of the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from r1console.core import fatal as _fatal
from r1console.core.logparse.events import (
    EngineInitDone,
    Event,
    FatalError,
    GraphsCaptured,
    HeadNode,
    JobCancelled,
    KvCache,
    KvCacheMemory,
    Milestone,
    ModelLoaded,
    Notice,
    RayPlacementWait,
    RayReady,
    RayWaiting,
    ScriptMarker,
    ServerReady,
    ShardProgress,
    Shutdown,
    VllmVersion,
    WeightsLoaded,
    parse_duration,
)
from r1console.core.textnum import is_ascii_int

_SHARD = re.compile(
    r"(?P<desc>(?:Multi-thread )?[Ll]oading (?:\w+ )*?(?:checkpoint )?shards(?P<eager> \(eager\))?"
    r"|Loading safetensors using [\w ]+?)"
    r": *(?P<pct>\d{1,3})%[^\r\n\[]{0,80}?(?P<n>\d+)/(?P<total>\d+) "
    r"\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:]+|\?)(?:, *(?P<rate>[^\]]*))?\]")
_GRAPH_BAR = re.compile(
    r"Capturing (?:CUDA graphs?|cudagraphs?)[^:\r\n]{0,80}: *\d{1,3}%[^\r\n\[]{0,80}?"
    r"(?P<n>\d+)/(?P<total>\d+) \[")
_GRAPH_START = re.compile(r"Capturing (?:CUDA graphs?|cudagraphs?)")
_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_SEED_HEAD = re.compile(r"^Head node: (?P<host>\S+)\s*$")
_SEED_HEAD_IP = re.compile(r"^Head node IP: (?P<ip>\S+)\s*$")
_SEED_HEAD_PORT = re.compile(r"^Head port: (?P<port>\d+)\s*$")
_SEED_RAY = re.compile(r"^Starting Ray (?P<what>head|worker) on (?P<host>\S+)")
_VERSION_API = re.compile(r"vLLM (?:API )?server version (?P<v>\d[\w.+\-]*)")
_VERSION_ENGINE = re.compile(r"Initializing an? (?:V1 )?LLM engine \(v(?P<v>[^)\s]+)\)")
_VERSION_BANNER = re.compile(r"[\u2580\u2584\u2588] +version +(?P<v>\d[\w.+\-]*)")
_LOAD_START = re.compile(r"Starting to load model (?P<model>\S+?)\.{3}")
_WEIGHTS = re.compile(r"Loading weights took (?P<s>[\d.]+) ?s")
_MODEL_LOADED = re.compile(r"Model loading took (?P<gib>[\d.]+) ?GiB(?: memory)? and (?P<s>[\d.]+) ?s")
_KV_MEMORY = re.compile(r"Available KV cache memory: (?P<gib>[\d.]+) ?GiB")
_KV_SIZE = re.compile(r"KV cache size: (?P<tok>[\d,]+) tokens")
_KV_CONC = re.compile(r"Maximum concurrency for (?P<tpr>[\d,]+) tokens per request: (?P<x>[\d.]+)x")
_KV_BLOCKS = re.compile(r"# \w+ blocks: (?P<g>\d+), # CPU blocks: (?P<c>\d+)")
_GRAPHS_DONE = re.compile(r"Graph capturing finished in (?P<s>[\d.]+) secs?, took (?P<gib>-?[\d.]+) GiB")
_INIT_DONE = re.compile(r"init engine \([^)]*\) took (?P<s>[\d.]+) ?s")
_READY = re.compile(r"Starting vLLM (?P<api>API )?server(?: (?P<idx>\d+))? on (?P<url>\S+)")
_PLACEMENT_WAIT = re.compile(r"Waiting for creating a placement group of specs for (?P<s>\d+) seconds")
_SHUTDOWN_SIGNAL = re.compile(r"\[shutdown\].*?signal=(?P<sig>SIG[A-Z]+)")
_CANCEL = re.compile(
    r"\*\*\* (?P<what>JOB|STEP) (?P<id>\S+) ON (?P<host>\S+) CANCELLED AT (?P<when>\S+)"
    r"(?P<due> DUE [Tt][Oo] .*?)? \*\*\*")
_DRAFT_LOAD = re.compile(r"Loading draft(?:er)? model")

Events = Iterable[Event]


@dataclass(frozen=True)
class Matcher:
    needles: tuple[str, ...]
    func: Callable[[str, dict], Events]
    final: bool = False  # found events end the line


# ---- helpers --------------------------------------------------------------------------------------
def _parse_rate(rate: str | None) -> float | None:
    if not rate:
        return None
    rate = rate.strip()
    try:
        if rate.endswith("s/it"):
            value = float(rate[:-4])
            return 1.0 / value if value > 0 else None
        if rate.endswith("it/s"):
            return float(rate[:-4])
    except ValueError:
        return None
    return None


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _search(regex: re.Pattern[str], build: Callable[[re.Match[str], dict], Event]) -> Callable[[str, dict], Events]:
    """A matcher function: one event from the first match of ``regex``, if any."""
    def func(msg: str, base: dict) -> Events:
        m = regex.search(msg)
        return (build(m, base),) if m else ()
    return func


# ---- progress bars (several may be glued on one segment) -------------------------------------------
def shard_bars(text: str, base: dict) -> list[Event]:
    return [ShardProgress(**base, desc=m.group("desc"), n=int(m.group("n")), total=int(m.group("total")),
                          percent=int(m.group("pct")), elapsed_s=parse_duration(m.group("elapsed")) or 0.0,
                          remaining_s=parse_duration(m.group("remaining")), rate_per_s=_parse_rate(m.group("rate")),
                          eager=bool(m.group("eager")))
            for m in _SHARD.finditer(text)]


def _graph_bars(msg: str, base: dict) -> Events:
    bars = [Milestone(**base, name="graphs", detail=f"{m.group('n')}/{m.group('total')}")
            for m in _GRAPH_BAR.finditer(msg)]
    if not bars and _GRAPH_START.search(msg):
        bars.append(Milestone(**base, name="graphs"))
    return bars


# ---- our script and the seed's echo lines ----------------------------------------------------------
def _marker_fields(rest: str) -> tuple[tuple[str, str], ...]:
    """``a=1 b=x y c=2`` -> (("a","1"), ("b","x y"), ("c","2")): a word without "=" belongs to
    the value before it (``rendered_by=r1console 0.1.0 profile=h200x8``)."""
    fields: list[list[str]] = []
    for word in rest.split():
        key, eq, value = word.partition("=")
        if eq and key.replace("_", "").replace("-", "").isalnum():
            fields.append([key, value])
        elif fields:
            fields[-1][1] = f"{fields[-1][1]} {word}" if fields[-1][1] else word
    return tuple((k, v) for k, v in fields)


def _script_fatal(tail: str, base: dict) -> Event:
    kind, _, message = tail.strip().partition(" ")
    message = message.strip()
    kind = kind or "script"
    explanation, what = _fatal.script_fatal(kind, message)
    return FatalError(**base, kind=kind, explanation=explanation, what_to_try=what, detail=message or None)


#: ``[r1console] WARNING <kind> <message>`` lines of the script (security downgrades): what to do.
SCRIPT_WARNINGS = {
    "auth_none": "Set server.api_key: auto in the profile, so every route but /health demands a key.",
    "ray_auth_unavailable": "Use Ray >= 2.52 on the nodes (token auth), or a single-node profile with "
                            "vllm.distributed_executor_backend: mp, so no Ray control plane is open.",
    "ray_auth_off": "Keep server.api_key: auto so the script can create the Ray token next to the key.",
}


def _script_warning(tail: str, base: dict) -> Event:
    kind, _, message = tail.strip().partition(" ")
    kind, message = kind or "script", message.strip()
    what = SCRIPT_WARNINGS.get(kind, "Read the job's log around this line.")
    return Notice(**base, kind=kind, explanation=message or kind, what_to_try=what, detail=message or None)


def _ray_marker(name: str, values: dict[str, str], base: dict) -> Event | None:
    if name == "ray_waiting":
        nodes, gpus = _FRACTION.match(values.get("nodes", "")), _FRACTION.match(values.get("gpus", ""))
        if nodes:
            return RayWaiting(**base, nodes=int(nodes.group(1)), nodes_total=int(nodes.group(2)),
                              gpus=int(gpus.group(1)) if gpus else None, gpus_total=int(gpus.group(2)) if gpus else None)
    elif name == "ray_ready" and is_ascii_int(values.get("nodes", "")):
        gpu_text = values.get("gpus", "")
        return RayReady(**base, nodes=int(values["nodes"]), gpus=int(gpu_text) if is_ascii_int(gpu_text) else None)
    return None


def _marker(msg: str, base: dict) -> Events:
    """``[r1console] <name> key=value …`` or ``[r1console] key=value …`` (name = first key)."""
    if not msg.startswith("[r1console]"):
        return ()
    rest = msg[len("[r1console]"):].strip()
    first, _, tail = rest.partition(" ")
    if not first:
        return ()
    if first == "FATAL":
        return (_script_fatal(tail, base),)
    if first == "WARNING":
        return (_script_warning(tail, base),)
    if "=" in first:
        name, fields = first.partition("=")[0], _marker_fields(rest)
    else:
        name, fields = first, _marker_fields(tail)
    values = dict(fields)
    ray = _ray_marker(name, values, base)
    if ray is not None:
        return (ray,)
    if name == "vllm_starting":
        return (Milestone(**base, name="vllm_starting"),)
    if name == "head_node" and values.get("head_node"):
        return (HeadNode(**base, host=values["head_node"], source="r1console"),)
    return (ScriptMarker(**base, name=name, fields=fields),)


def _seed_head(msg: str, base: dict) -> Events:
    if not msg.startswith("Head "):
        return ()
    m = _SEED_HEAD.match(msg)
    if m:
        return (HeadNode(**base, host=m.group("host"), source="seed"),)
    m = _SEED_HEAD_IP.match(msg)
    if m:
        return (ScriptMarker(**base, name="seed_head_ip", fields=(("head_ip", m.group("ip")),)),)
    m = _SEED_HEAD_PORT.match(msg)
    if m:
        return (ScriptMarker(**base, name="seed_head_port", fields=(("port", m.group("port")),)),)
    return ()


def _seed_ray(msg: str, base: dict) -> Events:
    m = _SEED_RAY.match(msg)
    return (Milestone(**base, name=f"ray_{m.group('what')}_start", detail=m.group("host")),) if m else ()


# ---- vLLM milestones --------------------------------------------------------------------------------
def _version(msg: str, base: dict) -> Events:
    m = _VERSION_API.search(msg) or _VERSION_BANNER.search(msg)
    return (VllmVersion(**base, version=m.group("v").rstrip(".")),) if m else ()


def _engine_version(msg: str, base: dict) -> Events:
    m = _VERSION_ENGINE.search(msg)
    return (VllmVersion(**base, version=m.group("v")), Milestone(**base, name="engine_init")) if m else ()


def _kv_cache(msg: str, base: dict) -> Events:
    kv: dict = {}
    m = _KV_SIZE.search(msg)
    if m:
        kv["tokens"] = _int(m.group("tok"))
    m = _KV_CONC.search(msg)
    if m:
        kv["tokens_per_request"] = _int(m.group("tpr"))
        kv["max_concurrency"] = float(m.group("x"))
    m = _KV_BLOCKS.search(msg)
    if m:
        kv["gpu_blocks"] = int(m.group("g"))
        kv["cpu_blocks"] = int(m.group("c"))
    return (KvCache(**base, **kv),) if kv else ()


def _ready(m: re.Match[str], base: dict) -> Event:
    wording = "server" if not m.group("api") else ("api_server_n" if m.group("idx") else "api_server")
    return ServerReady(**base, url=m.group("url").rstrip(".,;"), wording=wording)


def _cancelled(msg: str, base: dict) -> Events:
    m = _CANCEL.search(msg)
    if m and not m.group("due") and m.group("what") == "JOB":
        return (JobCancelled(**base, job_id=m.group("id"), host=m.group("host"), when=m.group("when")),)
    return ()


def _always(event_type: type[Event], **fields) -> Callable[[str, dict], Events]:
    return lambda msg, base: (event_type(**base, **fields),)


TABLE: tuple[Matcher, ...] = (
    Matcher(("shards", "Loading safetensors using"), lambda msg, base: shard_bars(msg, base)),
    Matcher(("Capturing CUDA graph", "Capturing cudagraph"), _graph_bars),
    Matcher(("[r1console]",), _marker, final=True),
    Matcher(("Head node", "Head port:"), _seed_head, final=True),
    Matcher(("Starting Ray ",), _seed_ray, final=True),
    Matcher(("version",), _version),
    Matcher(("LLM engine (v",), _engine_version),
    Matcher(("Loading draft",), _search(_DRAFT_LOAD, lambda m, b: Milestone(**b, name="draft_load"))),
    Matcher(("SIGTERM received at time",), _always(Shutdown, reason="SIGTERM")),  # Ray's / glog's handler
    Matcher(("Connected to Ray cluster",), _always(Milestone, name="ray_connected")),
    Matcher(("placement group of specs",),
            _search(_PLACEMENT_WAIT, lambda m, b: RayPlacementWait(**b, seconds=int(m.group("s"))))),
    Matcher(("Starting to load model",), lambda msg, base: (Milestone(
        **base, name="load_start", detail=m.group("model") if (m := _LOAD_START.search(msg)) else ""),)),
    Matcher(("Loading weights took",), _search(_WEIGHTS, lambda m, b: WeightsLoaded(**b, seconds=float(m.group("s"))))),
    Matcher(("Model loading took",), _search(_MODEL_LOADED, lambda m, b: ModelLoaded(
        **b, gib=float(m.group("gib")), seconds=float(m.group("s"))))),
    Matcher(("Available KV cache memory",), _search(_KV_MEMORY, lambda m, b: KvCacheMemory(
        **b, gib=float(m.group("gib"))))),
    Matcher(("KV cache size:", "Maximum concurrency for", " blocks: "), _kv_cache),
    Matcher(("Graph capturing finished",), _search(_GRAPHS_DONE, lambda m, b: GraphsCaptured(
        **b, seconds=float(m.group("s")), gib=float(m.group("gib"))))),
    Matcher(("init engine (",), _search(_INIT_DONE, lambda m, b: EngineInitDone(**b, seconds=float(m.group("s"))))),
    Matcher(("Starting vLLM",), _search(_READY, _ready)),
    Matcher(("Application startup complete",), _always(ServerReady, url=None, wording="uvicorn")),
    Matcher(("[shutdown]",), _search(_SHUTDOWN_SIGNAL, lambda m, b: Shutdown(**b, reason=m.group("sig")))),
    Matcher(("Shutting down",), lambda msg, base: (Shutdown(**base, reason="uvicorn"),) if msg == "Shutting down"
            else ()),
    Matcher(("CANCELLED AT",), _cancelled),
)

# Literals the parser itself needs besides the table's and the fatal signatures' (exception lines
# for the context of generic failures, and the start of a raw Python traceback).
PARSER_NEEDLES: tuple[str, ...] = ("Error: ", "Exception: ", "Traceback (most recent call last)")
NEEDLES: tuple[str, ...] = tuple(sorted({n for m in TABLE for n in m.needles} | set(PARSER_NEEDLES)
                                        | set(_fatal.ALL_NEEDLES)))


def match_line(msg: str, base: dict, out: list[Event]) -> bool:
    """Run the table over one cleaned line; True when a final matcher ended the line."""
    for matcher in TABLE:
        for needle in matcher.needles:
            if needle in msg:
                break
        else:
            continue
        found = matcher.func(msg, base)
        if found:
            out.extend(found)
            if matcher.final:
                return True
    return False


__all__ = ["Matcher", "NEEDLES", "PARSER_NEEDLES", "TABLE", "match_line", "shard_bars"]
