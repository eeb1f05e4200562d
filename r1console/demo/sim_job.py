"""One simulated SLURM job: what its batch script asks for, what it prints and when, and what its
GPUs show. Pure (no I/O, no clock): ``sim_cluster`` plays the timeline back into real files.

* :func:`parse_script` reads an uploaded batch script the way sbatch and bash would: ``#SBATCH``
  lines up to the first command, then r1console's settings block (``R1C_PROFILE=…``,
  ``VLLM_ARGS=(…)``, every value shell-quoted, so ``shlex`` reads them back exactly).
* :func:`profile_from_script` rebuilds a :class:`~r1console.core.profiles.Profile` from it, so the
  planner and ``sim_logs.StartupSpec.from_profile`` see what the job really runs.
* :func:`build_timeline` is everything the job writes to ``job.%N.%j.out`` / ``.err``, each line
  with its time (simulated seconds after the job started): our script's ``[r1console]`` markers
  and ``Head node:`` line, ``ray start`` output of the head and every worker (Ray's CLI format),
  vLLM's startup for its version (``sim_logs.startup_log_lines``: Ray ``(RayWorkerWrapper pid=…,
  ip=…)`` prefixes, tqdm ``\\r…\\n`` bars for every shard, uvicorn lines), and, with a fault, the
  failure as a real job prints it (CUDA OOM traceback while loading; NCCL watchdog timeout).
* :class:`GpuModel` is every GPU's memory / utilisation / power over the job's phases: memory rises
  with the shards loaded and settles at the planner's weights + KV cache (+ CUDA context).

Formats: docs/facts.md §2 (vLLM, tqdm, uvicorn, Ray, NCCL, slurmstepd) and SLURM 22.05 captures
(single- and multi-node runs; some are kept in tests/data/slurm).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from r1console.core.slurm_parse import parse_duration
from r1console.demo.sim_logs import LogLine, StartupSpec, VllmLogFormat, startup_log_lines

MiB = 1024**2
GiB = 1024**3
FAULTS = ("oom", "nccl", "ray_node_lost")  # ray_node_lost: the last node's Ray step dies mid-serve
SITE = "/opt/conda/envs/vllm-inference/lib/python3.10/site-packages"

# ================================================================================================
# The batch script
# ================================================================================================
#: sbatch's short options that take a value, by their long name.
_SHORT = {"A": "account", "C": "constraint", "D": "chdir", "G": "gpus", "J": "job-name", "N": "nodes",
          "c": "cpus-per-task", "d": "dependency", "e": "error", "i": "input", "n": "ntasks",
          "o": "output", "p": "partition", "q": "qos", "t": "time", "w": "nodelist", "x": "exclude"}
#: long options that never take a value (``--exclusive`` may: ``--exclusive=user``).
_FLAGS = {"exclusive", "parsable", "hold", "requeue", "no-requeue", "overcommit", "wait", "test-only",
          "contiguous", "spread-job", "use-min-nodes", "ignore-pbs", "no-kill", "quiet", "verbose"}
_SHORT_FLAGS = {"H": "hold", "O": "overcommit", "Q": "quiet", "W": "wait", "k": "no-kill", "s": "oversubscribe",
                "v": "verbose", "h": "help", "V": "version"}


class ScriptError(ValueError):
    """sbatch would refuse the options (the message is sbatch's own)."""


def parse_sbatch_args(tokens: list[str], *, stop_at_positional: bool = False) -> tuple[dict[str, str], list[str]]:
    """sbatch options (``--nodes=2``, ``--nodes 2``, ``-N2``, ``-N 2``, ``--exclusive``) -> ({long: value}, rest).

    With ``stop_at_positional`` (the command line) parsing ends at the script path, like getopt with
    ``+``: the rest are the script and its arguments.
    """
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            rest.extend(tokens[i + 1:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok[2:].partition("=")
            if not eq and name not in _FLAGS:
                if i + 1 >= len(tokens):
                    raise ScriptError(f"sbatch: option '--{name}' requires an argument")
                value = tokens[i + 1]
                i += 1
            opts[name] = value
        elif tok.startswith("-") and len(tok) > 1:
            letter = tok[1]
            if letter in _SHORT:
                value = tok[2:]
                if not value:
                    if i + 1 >= len(tokens):
                        raise ScriptError(f"sbatch: option requires an argument -- '{letter}'")
                    value = tokens[i + 1]
                    i += 1
                opts[_SHORT[letter]] = value
            elif letter in _SHORT_FLAGS:
                opts[_SHORT_FLAGS[letter]] = ""
            else:
                raise ScriptError(f"sbatch: invalid option -- '{letter}'")
        else:
            if stop_at_positional:
                rest.extend(tokens[i:])
                break
            rest.append(tok)
        i += 1
    return opts, rest


_SETTING = re.compile(r"^(R1C_[A-Z0-9_]+)=(.*)$")
_ARRAY = re.compile(r"^VLLM_ARGS=\((.*)\)\s*$")


@dataclass
class JobScript:
    path: str
    text: str
    options: dict[str, str] = field(default_factory=dict)   # #SBATCH, overridden by the command line
    settings: dict[str, str] = field(default_factory=dict)  # R1C_* = value (unquoted)
    vllm_args: list[str] = field(default_factory=list)
    markers: bool = False                                    # the script prints `[r1console] …` lines

    # ---- what it asks SLURM for -------------------------------------------------------------
    @property
    def nodes(self) -> int:
        text = self.options.get("nodes", "1")
        m = re.match(r"^(\d+)(?:-(\d+))?$", text.strip())
        if not m:
            raise ScriptError(f"sbatch: error: invalid node count `{text}'")
        return max(1, int(m.group(1)))

    @property
    def gpus_per_node(self) -> int:
        if "gpus-per-node" in self.options:
            value = self.options["gpus-per-node"].rsplit(":", 1)[-1]
            return int(value) if value.isdigit() else 0
        gres = self.options.get("gres", "")
        m = re.search(r"gpu(?::[\w-]+)?:(\d+)", gres)
        return int(m.group(1)) if m else 0

    @property
    def cpus_per_task(self) -> int:
        value = self.options.get("cpus-per-task", "1")
        return int(value) if value.isdigit() else 1

    @property
    def ntasks_per_node(self) -> int:
        value = self.options.get("ntasks-per-node", "1")
        return int(value) if value.isdigit() else 1

    @property
    def mem_mb(self) -> int | None:
        return parse_mem_mb(self.options.get("mem"))

    @property
    def time_limit_s(self) -> int | None:
        text = self.options.get("time")
        if text is None or text.strip().upper() in ("", "UNLIMITED", "INFINITE"):
            return None
        seconds = parse_duration(text)
        if seconds is None:
            raise ScriptError("sbatch: error: Invalid --time specification")
        return seconds

    @property
    def job_name(self) -> str:
        return self.options.get("job-name") or self.path.rsplit("/", 1)[-1]

    @property
    def output(self) -> str:
        return self.options.get("output") or "slurm-%j.out"

    @property
    def error(self) -> str:
        return self.options.get("error") or self.output

    @property
    def exclusive(self) -> bool:
        return "exclusive" in self.options

    # ---- what it runs -----------------------------------------------------------------------
    def vllm_flag(self, name: str) -> str | None:
        """``--name value`` / ``--name=value`` in VLLM_ARGS; "" for a flag without a value."""
        args = self.vllm_args
        for i, arg in enumerate(args):
            if arg == name:
                nxt = args[i + 1] if i + 1 < len(args) else ""
                return "" if nxt.startswith("--") else nxt
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    @property
    def version(self) -> str:
        return self.settings.get("R1C_VLLM_VERSION") or "0.8.5"

    @property
    def port(self) -> int:
        text = self.settings.get("R1C_PORT") or self.vllm_flag("--port") or "8000"
        return int(text) if text.isdigit() else 8000

    @property
    def backend(self) -> str:
        return self.settings.get("R1C_BACKEND") or self.vllm_flag("--distributed-executor-backend") or (
            "ray" if self.nodes > 1 else "mp")

    @property
    def key_file(self) -> str | None:
        return self.settings.get("R1C_API_KEY_FILE") or None


def parse_mem_mb(text: str | None) -> int | None:
    if not text:
        return None
    m = re.match(r"^(\d+)([KMGT]?)B?$", text.strip().upper())
    if not m:
        raise ScriptError("sbatch: error: Invalid --mem specification")
    n, unit = int(m.group(1)), m.group(2) or "M"
    return {"K": max(1, n // 1024), "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]


def parse_script(path: str, text: str, cli_options: dict[str, str] | None = None) -> JobScript:
    """The script as sbatch (``#SBATCH`` up to the first command) and bash (the settings) read it."""
    if not text.startswith("#!"):
        raise ScriptError("sbatch: error: This does not look like a batch script.  The first\n"
                          "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
                          "sbatch: error: For instance: #!/bin/sh")
    options: dict[str, str] = {}
    header = True
    settings: dict[str, str] = {}
    vllm_args: list[str] = []
    for line in text.splitlines()[1:]:
        stripped = line.strip()
        if header:
            if stripped.startswith("#SBATCH"):
                try:
                    tokens = shlex.split(stripped[len("#SBATCH"):], comments=True)
                except ValueError:
                    tokens = stripped[len("#SBATCH"):].split()
                opts, _ = parse_sbatch_args(tokens)
                options.update(opts)
                continue
            if not stripped or stripped.startswith("#"):
                continue
            header = False
        m = _SETTING.match(stripped)
        if m:
            try:
                words = shlex.split(m.group(2))
            except ValueError:
                words = [m.group(2)]
            settings[m.group(1)] = " ".join(words)
            continue
        m = _ARRAY.match(stripped)
        if m:
            try:
                vllm_args = shlex.split(m.group(1))
            except ValueError:
                vllm_args = m.group(1).split()
    options.update(cli_options or {})
    return JobScript(path=path, text=text, options=options, settings=settings, vllm_args=vllm_args,
                     markers="r1c_mark" in text)


def profile_from_script(script: JobScript) -> Any:
    """A Profile with what the script runs (None when it cannot be validated)."""
    from r1console.core.profiles import Profile

    def num(flag: str, kind: type = int) -> Any:
        value = script.vllm_flag(flag)
        try:
            return kind(value) if value not in (None, "") else None
        except ValueError:
            return None

    settings = script.settings
    vllm: dict[str, Any] = {
        "version": script.version,
        "max_num_seqs": num("--max-num-seqs"),
        "max_num_batched_tokens": num("--max-num-batched-tokens"),
        "gpu_memory_utilization": num("--gpu-memory-utilization", float) or 0.9,
        "max_model_len": num("--max-model-len"),
        "enforce_eager": script.vllm_flag("--enforce-eager") is not None,
        "reasoning_parser": script.vllm_flag("--reasoning-parser") or None,
        "distributed_executor_backend": script.backend if script.backend in ("ray", "mp") else None,
        "tensor_parallel_size": num("--tensor-parallel-size"),
        "pipeline_parallel_size": num("--pipeline-parallel-size") or 1,
        "kv_cache_dtype": script.vllm_flag("--kv-cache-dtype") or "auto",
        "enable_expert_parallel": script.vllm_flag("--enable-expert-parallel") is not None,
    }
    slurm: dict[str, Any] = {
        "nodes": script.nodes, "gpus_per_node": script.gpus_per_node,
        "cpus_per_task": script.cpus_per_task, "constraint": script.options.get("constraint"),
        "job_name": script.job_name if re.match(r"^[\w.+-]+$", script.job_name) else "r1console",
    }
    data = {
        "name": settings.get("R1C_PROFILE") or "job",
        "slurm": slurm,
        "model": {"path": settings.get("R1C_MODEL_PATH") or "/path/to/DeepSeek-R1",
                  "served_name": script.vllm_flag("--served-model-name") or None},
        "vllm": vllm,
        "server": {"port": script.port, "host": script.vllm_flag("--host") or "0.0.0.0", "api_key": "none"},
    }
    for attempt in range(3):
        try:
            return Profile.model_validate(data)
        except Exception:  # pydantic ValidationError: drop what the model rejects, keep the rest
            if attempt == 0:
                data["vllm"] = {k: v for k, v in vllm.items() if k in ("version", "distributed_executor_backend")}
            elif attempt == 1:
                data["slurm"] = {"nodes": script.nodes, "gpus_per_node": script.gpus_per_node}
                data["name"] = "job"
    return None


# ================================================================================================
# The timeline
# ================================================================================================
@dataclass(frozen=True)
class Entry:
    """One thing the job does at ``t`` simulated seconds after it started."""

    t: float
    stream: str = ""       # "out" / "err" for a line; "" for an action
    text: str = ""
    cr: bool = False       # a tqdm redraw: "\r" + text + "\n"
    action: str = ""       # "vllm_bind" (vLLM bound its port), "server_up", "exit"
    code: int = 0          # exit code of the batch script for "exit"

    def render(self) -> str:
        return ("\r" if self.cr else "") + self.text + "\n"


@dataclass
class Phases:
    """When things happen, in simulated seconds after the job started (None: never)."""

    vllm: float | None = None       # `vllm serve` starts
    cuda: float | None = None       # CUDA/NCCL initialised on every rank
    load0: float | None = None      # first shard bar
    load1: float | None = None      # last shard bar
    kv: float | None = None         # KV cache allocated
    ready: float | None = None      # API server up
    hang: float | None = None       # nccl fault: the stuck collective starts
    oom: float | None = None        # oom fault: the failing allocation
    end: float | None = None        # the batch script exits (fault)


@dataclass
class JobContext:
    """What the timeline of one job depends on."""

    job_id: int
    script: JobScript
    profile: Any                    # Profile or None
    nodes: list[str]
    ips: list[str]
    gpus_per_node: int
    start: _dt.datetime             # the job's StartTime (simulated clock, local time)
    load_seconds: float = 60.0
    fault: str | None = None
    nccl_timeout_s: float = 60.0
    api_pid: int = 4242
    kv_cache_tokens: int | None = None
    key_readable: bool = True
    oom_fraction: float = 0.6       # how far through the shards the OOM hits

    @property
    def head(self) -> str:
        return self.nodes[0]

    @property
    def head_ip(self) -> str:
        return self.ips[0]

    @property
    def ray_port(self) -> int:
        fixed = self.script.settings.get("R1C_RAY_HEAD_PORT", "")
        if fixed.isdigit():
            return int(fixed)
        return 15000 + int(hashlib.sha256(str(self.job_id).encode()).hexdigest()[:6], 16) % 5001

    @property
    def world(self) -> int:
        p = self.profile
        if p is None:
            return max(1, len(self.nodes) * self.gpus_per_node)
        return max(1, p.tensor_parallel_size * p.vllm.pipeline_parallel_size)


def _ray_ts(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S,") + f"{when.microsecond // 1000:03d}"


def _iso(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


class _Builder:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.entries: list[Entry] = []

    def at(self, t: float) -> _dt.datetime:
        return self.ctx.start + _dt.timedelta(seconds=t)

    def line(self, t: float, stream: str, text: str, cr: bool = False) -> None:
        self.entries.append(Entry(t, stream, text, cr))

    def out(self, t: float, text: str) -> None:
        self.line(t, "out", text)

    def err(self, t: float, text: str) -> None:
        self.line(t, "err", text)

    def action(self, t: float, name: str, code: int = 0) -> None:
        self.entries.append(Entry(t, action=name, code=code))

    def ray(self, t: float, level: str, where: str, msg: str, stream: str = "err") -> None:
        """Ray's logging format (non-tty): ``2026-12-03 13:15:50,183\\tINFO x.py:N -- msg``; the driver's
        (vLLM connecting) goes to stderr, ``ray start``'s CLI output to stdout (see _ray_start_block)."""
        self.line(t, stream, f"{_ray_ts(self.at(t))}\t{level} {where} -- {msg}")


def _ray_start_block(b: _Builder, t: float, ip: str, address: str, head: bool, *, job_id: str = "0",
                     user: str = "r1console") -> float:
    """``ray start [--head] --block`` on one node, as Ray 2.60 printed it in a SLURM step on the 2-node test
    cluster (tests/data/ray-2node/*/job.*.out|err): the CLI lines on stdout, the auth warning on stderr."""
    def cli(when: float, level: str, where: str, msg: str) -> None:
        b.ray(when, level, where, msg, stream="out")

    if head:
        cli(t, "INFO", "usage_lib.py:467",
            "Usage stats collection is enabled by default without user confirmation because this terminal "
            "is detected to be non-interactive. To disable this, add `--disable-usage-stats` to the command "
            "that starts the cluster, or run the following command: `ray disable-usage-stats` before "
            "starting the cluster. See https://docs.ray.io/en/master/cluster/usage-stats.html for more details.")
        cli(t, "INFO", "scripts.py:1043", f"Local node IP: {ip}")
        b.ray(t, "WARNING", "authentication_token_setup.py:73",
              "Token authentication is disabled for this Ray cluster. Anyone with network access to the cluster "
              "can run arbitrary code and access its data. To enable token authentication, generate a token "
              "with `ray get-auth-token --generate` or set RAY_AUTH_MODE=token. For more information, see "
              "https://docs.ray.io/en/latest/ray-security/token-auth.html")
        t += 5.0  # the head's GCS + raylet came up in 5.1 s (captured, loaded 2-core machine)
        base = 1084
    else:
        cli(t, "INFO", "scripts.py:1234", f"Local node IP: {ip}")
        t += 2.2  # a worker joined in 2.2 s
        base = 1250
    for i, msg in enumerate(("--------------------", "Ray runtime started.", "--------------------")):
        cli(t, "SUCC", f"scripts.py:{base + i}", msg)
    if head:
        for where, msg in (("scripts.py:1088", "Next steps"),
                           ("cli_output_helpers.py:16", "Note: The following commands are intended for use on"),
                           ("cli_output_helpers.py:17", "the head node or within the cluster network."),
                           ("scripts.py:1092", "To add another node to this Ray cluster, run"),
                           ("scripts.py:1095", f"  ray start --address='{address}'"),
                           ("scripts.py:1106", "To connect to this Ray cluster:"),
                           ("scripts.py:1108", "import ray"),
                           ("scripts.py:1109", f"ray.init(_node_ip_address='{ip}')"),
                           ("scripts.py:1142", "To terminate the Ray runtime, run"),
                           ("scripts.py:1143", "  ray stop"),
                           ("scripts.py:1146", "To view the status of the cluster, use"),
                           ("scripts.py:1147", "  ray status")):
            cli(t, "INFO", where, msg)
    else:
        cli(t, "INFO", "scripts.py:1254", "To terminate the Ray runtime, run")
        cli(t, "INFO", "scripts.py:1255", "  ray stop")
    cli(t, "INFO", "scripts.py:1265", "--block")
    cli(t, "INFO", "scripts.py:1266", "This command will now block forever until terminated by a signal.")
    cli(t, "INFO", "scripts.py:1269",
        "Running subprocesses are monitored and a message will be printed if any of them terminate "
        "unexpectedly. Subprocesses exit with SIGTERM will be treated as graceful, thus NOT reported.")
    session = b.at(0).strftime("session_%Y-%m-%d_%H-%M-%S_000000_4242")
    cli(t, "INFO", "scripts.py:1274",
        f"Process exit logs will be saved to: /tmp/{user}/{job_id}/ray/{session}/logs/ray_process_exit.log")
    return t


def _first(lines: list[LogLine], *needles: str) -> float | None:
    for line in lines:
        if any(n in line.text for n in needles):
            return line.offset_s
    return None


def _worker_prefix(ctx: JobContext, rank: int) -> str:
    """Ray's prefix for the rank's worker, as sim_logs numbers them (head-node workers carry no ip)."""
    node = rank // max(1, ctx.gpus_per_node)
    pid = 927 + rank * 7
    return f"RayWorkerWrapper pid={pid}" + (f", ip={ctx.ips[node]}" if 0 < node < len(ctx.ips) else "")


def oom_rank(ctx: JobContext) -> int:
    """The rank that runs out of memory: a GPU on the last node (its Ray lines carry ``ip=``)."""
    world = ctx.world
    gpn = max(1, ctx.gpus_per_node)
    rank = (len(ctx.nodes) - 1) * gpn + min(2, gpn - 1)
    return min(rank, world - 1)


def build_timeline(ctx: JobContext, model: "GpuModel | None" = None) -> tuple[list[Entry], Phases]:
    """Everything the job prints (and its actions), sorted by time; and when its phases happen."""
    b = _Builder(ctx)
    s = ctx.script
    phases = Phases()
    nodelist = compress_hostlist(ctx.nodes)
    ray = s.backend == "ray"
    t = 0.0
    if s.markers:
        b.out(t, f"[r1console] rendered_by=r1console {s.settings.get('R1C_RENDERED_BY', '?')} "
                 f"profile={s.settings.get('R1C_PROFILE', '')} vllm={s.version}")
        b.out(t, f"[r1console] job_id={ctx.job_id} nodelist={nodelist}")
        b.out(t, f"[r1console] workdir={s.settings.get('R1C_WORKDIR', '')}")
        if not ctx.key_readable and s.key_file:
            msg = f"[r1console] FATAL api_key_missing cannot read the API key file {s.key_file}"
            b.out(0.2, msg)
            b.err(0.2, msg)
            b.action(0.3, "exit", 1)
            phases.end = 0.3
            return _sorted(b.entries), phases
    t = 0.3
    b.out(t, f"Head node: {ctx.head}")
    if s.markers:
        b.out(t, f"[r1console] head_node={ctx.head}")
        b.out(t, f"[r1console] head_ip={ctx.head_ip}")
        b.out(t, f"[r1console] port={s.port}")
    gpn = ctx.gpus_per_node
    if ray:
        address = f"{ctx.head_ip}:{ctx.ray_port}"
        if s.markers:
            b.out(0.4, f"[r1console] ray_head={address}")
        up = _ray_start_block(b, 1.2, ctx.head_ip, address, head=True, job_id=str(ctx.job_id))
        t = up + 2.9  # the script's first successful `ray.nodes()` after the head came up (polls every 3 s)
        workers = ctx.nodes[1:]
        for node in workers:
            if s.markers:
                b.out(t, f"[r1console] ray_worker node={node}")
        for i, node in enumerate(workers):
            _ray_start_block(b, t + 3.0 + 0.2 * i, ctx.ips[i + 1], address, head=False, job_id=str(ctx.job_id))
        t += 2.5
        if workers and s.markers:
            b.out(t, f"[r1console] ray_waiting nodes=1/{len(ctx.nodes)} gpus={gpn}/{gpn * len(ctx.nodes)}")
            t += 7.0  # sleep 5 + one ray.init
        if s.markers:
            b.out(t, f"[r1console] ray_ready nodes={len(ctx.nodes)} gpus={gpn * len(ctx.nodes)}")
    t += 0.2
    if s.markers:
        b.out(t, "[r1console] vllm_starting")
    v0 = t + 0.5
    phases.vllm = v0
    b.action(v0, "vllm_bind")

    # ---- vLLM itself (sim_logs) -----------------------------------------------------------------
    profile = ctx.profile
    overrides: dict[str, Any] = dict(load_seconds=ctx.load_seconds, head_ip=ctx.head_ip,
                                     worker_ips=tuple(ctx.ips[1:]), api_pid=ctx.api_pid)
    if ctx.kv_cache_tokens:
        overrides["kv_cache_tokens"] = ctx.kv_cache_tokens
    if profile is not None:
        spec = StartupSpec.from_profile(profile, **overrides)
    else:
        spec = StartupSpec(version=s.version, port=s.port, nodes=len(ctx.nodes), gpus_per_node=gpn,
                           tensor_parallel_size=ctx.world, backend=s.backend, **overrides)
    spec.nodes = len(ctx.nodes)
    spec.gpus_per_node = gpn
    lines = startup_log_lines(spec, ctx.start + _dt.timedelta(seconds=v0))
    bars = [ln.offset_s for ln in lines if ln.cr]
    rel = {
        "cuda": _first(lines, "world size"),
        "load0": bars[0] if bars else None,
        "load1": bars[-1] if bars else None,
        "model": _first(lines, "Model loading took"),
        "kv": _first(lines, "Available KV cache memory", "KV cache size"),
        "ready": _first(lines, "Starting vLLM API server", "Starting vLLM server"),
        "pg": _first(lines, "placement group"),
    }
    phases.cuda = v0 + rel["cuda"] if rel["cuda"] is not None else None
    phases.load0 = v0 + rel["load0"] if rel["load0"] is not None else None
    phases.load1 = v0 + rel["load1"] if rel["load1"] is not None else None
    phases.kv = v0 + rel["kv"] if rel["kv"] is not None else None

    cut: float | None = None  # vLLM lines from this offset on are never printed (a fault ends the job)
    if ctx.fault == "oom" and rel["load0"] is not None and rel["load1"] is not None:
        cut = rel["load0"] + ctx.oom_fraction * (rel["load1"] - rel["load0"])
    elif ctx.fault == "nccl" and rel["model"] is not None:
        cut = rel["model"] + 0.5
    elif ctx.fault == "ray_node_lost" and ray and len(ctx.nodes) > 1 and rel["ready"] is not None:
        cut = rel["ready"] + 20.0  # serving for a while, then the last node's `ray start` step is killed

    if ray and rel["pg"] is not None:
        when = rel["pg"] - 1.0
        # vLLM's driver joining the job's Ray cluster (Ray 2.60, captured in tests/data/ray-2node/)
        b.ray(v0 + when, "INFO", "worker.py:1691",
              f"Using address {ctx.head_ip}:{ctx.ray_port} set in the environment variable RAY_ADDRESS")
        b.ray(v0 + when, "INFO", "worker.py:1841",
              f"Connecting to existing Ray cluster at address: {ctx.head_ip}:{ctx.ray_port}...")
        b.ray(v0 + when + 0.1, "INFO", "worker.py:2038", "Connected to Ray cluster.")
    server_started = False
    for ln in lines:
        if cut is not None and ln.offset_s > cut:
            break
        if not server_started and rel["ready"] is not None and ln.offset_s >= rel["ready"]:
            b.action(v0 + rel["ready"], "server_up")
            phases.ready = v0 + rel["ready"]
            server_started = True
        b.line(v0 + ln.offset_s, ln.stream, ln.text, ln.cr)

    if ctx.fault == "oom" and cut is not None:
        phases.oom = v0 + cut
        phases.end = _oom_lines(b, ctx, v0 + cut, model)
    elif ctx.fault == "nccl" and cut is not None:
        phases.hang = v0 + cut + 0.5
        phases.end = _nccl_lines(b, ctx, phases.hang)
    elif ctx.fault == "ray_node_lost" and cut is not None:
        phases.end = _ray_node_lost_lines(b, ctx, v0 + cut)
        b.action(phases.end + 0.1, "exit", 1)  # the script stops on its own marker: no vllm_exited
        return _sorted(b.entries), phases
    if phases.end is not None:
        if s.markers:
            b.out(phases.end, "[r1console] vllm_exited code=1")
        b.action(phases.end + 0.1, "exit", 1)
    return _sorted(b.entries), phases


def _sorted(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e.t)  # stable: same-time entries keep their order


# ---- faults ------------------------------------------------------------------------------------
def _ray_node_lost_lines(b: _Builder, ctx: JobContext, t: float) -> float:
    """The last node's Ray step killed while vLLM runs, as the 2-node test cluster printed it
    (tests/data/ray-2node/worker-step-killed): srun reports the step, the script's step check stops the
    job with a marker naming the node, SLURM tears the other steps down."""
    node, step, head = ctx.nodes[-1], len(ctx.nodes) - 1, ctx.nodes[0]
    b.err(t, f"srun: error: {node}: task 0: Killed")
    b.err(t, f"srun: Force Terminated StepId={ctx.job_id}.{step}")
    t += 0.8  # the script looks at its steps every second
    marker = (f"[r1console] FATAL ray_step_died node={node} the 'ray start' step on {node} exited; "
              "see its error above (is ray installed there?)")
    b.out(t, marker)
    b.err(t, marker)
    b.err(t, "srun: forcing job termination")
    b.err(t, "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.")
    t += 0.5
    b.err(t, f"slurmstepd-{head}: error: *** STEP {ctx.job_id}.0 ON {head} FAILED (non-zero exit code or "
             "other failure mode) ***")
    b.err(t, f"srun: error: {head}: task 0: Killed")
    return t + 0.2


def _block(b: _Builder, t: float, fmt: VllmLogFormat, fileinfo: str, text: str, *, level: str = "ERROR",
           process: str = "APIServer", ray: str | None = None, pid: int | None = None) -> None:
    """A multi-line log record: vLLM's NewLineFormatter repeats the header on every line."""
    when = b.at(t)
    for part in text.split("\n"):
        b.out(t, fmt.line(when, fileinfo, part, level=level, process=process, ray=ray, pid=pid))


def _engine_process(fmt: VllmLogFormat) -> str:
    return "EngineCore_DP0" if fmt.v >= (0, 10, 0) else "EngineCore"


def _engine_failed(b: _Builder, t: float, fmt: VllmLogFormat, cause: str, *, ray: bool = True) -> None:
    """EngineCore's ``EngineCore failed to start.`` record and the API server's RuntimeError (stderr)."""
    v = fmt.v
    proc = _engine_process(fmt)
    core = "core.py:396" if v < (0, 11, 0) else "core.py:708"
    tb = "\n".join([
        "EngineCore failed to start.",
        "Traceback (most recent call last):",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 387, in run_engine_core',
        "    engine_core = EngineCoreProc(*args, **kwargs)",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 329, in __init__',
        "    super().__init__(vllm_config, executor_class, log_stats,",
        f'  File "{SITE}/vllm/v1/engine/core.py", line 64, in __init__',
        "    self.model_executor = executor_class(vllm_config)",
        f'  File "{SITE}/vllm/executor/executor_base.py", line 52, in __init__',
        "    self._init_executor()",
        *([f'  File "{SITE}/vllm/executor/ray_distributed_executor.py", line 114, in _init_executor',
           "    self._init_workers_ray(placement_group)",
           f'  File "{SITE}/vllm/executor/ray_distributed_executor.py", line 522, in _run_workers',
           "    ray_worker_outputs = ray.get(ray_worker_outputs)",
           f'  File "{SITE}/ray/_private/worker.py", line 2822, in get',
           "    values, debugger_breakpoint = worker.get_objects(object_refs, timeout=timeout)",
           f'  File "{SITE}/ray/_private/worker.py", line 930, in get_objects',
           "    raise value.as_instanceof_cause()"] if ray else
          [f'  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 93, in _init_executor',
           "    self.workers = WorkerProc.wait_for_ready(unready_workers)",
           f'  File "{SITE}/vllm/v1/executor/multiproc_executor.py", line 422, in wait_for_ready',
           "    raise e from None"]),
        cause,
    ])
    _block(b, t, fmt, core, tb, process=proc)
    # run_engine_core logs, then re-raises: multiprocessing prints the traceback on stderr.
    b.err(t + 0.1, f"Process {'EngineCore_DP0' if v >= (0, 10, 0) else 'EngineCore_0'}:")
    for text in ["Traceback (most recent call last):",
                 '  File "/usr/lib/python3.10/multiprocessing/process.py", line 314, in _bootstrap',
                 "    self.run()",
                 '  File "/usr/lib/python3.10/multiprocessing/process.py", line 108, in run',
                 "    self._target(*self._args, **self._kwargs)",
                 f'  File "{SITE}/vllm/v1/engine/core.py", line 400, in run_engine_core',
                 "    raise e",
                 *tb.split("\n")[2:]]:  # from the first frame after "Traceback ..."
        b.err(t + 0.1, text)
    failed = "Engine core initialization failed. See root cause above."
    if v >= (0, 10, 0):
        failed += " Failed core proc(s): {'EngineCore_DP0': 1}"
    b.err(t + 0.4, "Traceback (most recent call last):")
    for text in (f'  File "{SITE.rsplit("/lib/", 1)[0]}/bin/vllm", line 8, in <module>',
                 "    sys.exit(main())",
                 f'  File "{SITE}/vllm/entrypoints/cli/main.py", line 53, in main',
                 "    args.dispatch_function(args)",
                 f'  File "{SITE}/vllm/entrypoints/cli/serve.py", line 27, in cmd',
                 "    uvloop.run(run_server(args))",
                 f'  File "{SITE}/vllm/v1/engine/core_client.py", line 430, in _wait_for_engine_startup',
                 '    raise RuntimeError("Engine core initialization failed. "',
                 f"RuntimeError: {failed}"):
        b.err(t + 0.4, text)


def _oom_message(ctx: JobContext, model: "GpuModel | None") -> str:
    total_gib = (model.total_mib if model else 143771) / 1024 - 0.6
    used_gib = (model.process_mib_at_oom() if model else 49_900) / 1024
    other_gib = (model.stale_mib if model else 92_800) / 1024
    return (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB. GPU 0 has a total capacity "
            f"of {total_gib:.2f} GiB of which 1.02 GiB is free. Process 48213 has {other_gib:.2f} GiB memory in "
            f"use. Including non-PyTorch memory, this process has {used_gib:.2f} GiB memory in use. Of the "
            f"allocated memory {used_gib - 1.21:.2f} GiB is allocated by PyTorch, and 215.50 MiB is reserved by "
            f"PyTorch but unallocated. If reserved but unallocated memory is large try setting "
            f"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
            f"Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def _oom_lines(b: _Builder, ctx: JobContext, t: float, model: "GpuModel | None") -> float:
    """A rank runs out of GPU memory while loading a shard (another process holds part of that GPU)."""
    fmt = VllmLogFormat(ctx.script.version, ctx.api_pid, ctx.api_pid + 136)
    rank = oom_rank(ctx)
    ray = ctx.script.backend == "ray"
    prefix = _worker_prefix(ctx, rank) if ray else None
    proc = _engine_process(fmt) if not ray else "EngineCore"
    message = _oom_message(ctx, model)
    worker_tb = "\n".join([
        "Error executing method 'load_model'. This might cause deadlock in distributed execution.",
        "Traceback (most recent call last):",
        f'  File "{SITE}/vllm/worker/worker_base.py", line 612, in execute_method',
        "    return run_method(self, method, args, kwargs)",
        f'  File "{SITE}/vllm/utils.py", line 2456, in run_method',
        "    return func(*args, **kwargs)",
        f'  File "{SITE}/vllm/v1/worker/gpu_worker.py", line 162, in load_model',
        "    self.model_runner.load_model()",
        f'  File "{SITE}/vllm/v1/worker/gpu_model_runner.py", line 1332, in load_model',
        "    self.model = get_model(vllm_config=self.vllm_config)",
        f'  File "{SITE}/vllm/model_executor/model_loader/loader.py", line 455, in load_model',
        "    loaded_weights = model.load_weights(",
        f'  File "{SITE}/vllm/model_executor/models/deepseek_v2.py", line 805, in load_weights',
        "    weight_loader(param,",
        f'  File "{SITE}/vllm/model_executor/layers/fused_moe/layer.py", line 718, in weight_loader',
        "    self._load_model_weight_or_group_weight_scale(",
        f'  File "{SITE}/vllm/model_executor/layers/fused_moe/layer.py", line 507, in _load_w13',
        "    expert_data.copy_(loaded_weight)",
        message,
    ])
    _block(b, t, fmt, "worker_base.py:620", worker_tb, process=proc, ray=prefix)
    if ray:
        pid = 927 + rank * 7
        node = rank // max(1, ctx.gpus_per_node)
        cause = ("ray.exceptions.RayTaskError(OutOfMemoryError): ray::RayWorkerWrapper.execute_method() "
                 f"(pid={pid}, ip={ctx.ips[node]}, actor_id=3f1c0e8b2d6a4b1f9a7e5c0d01000000, "
                 "repr=<vllm.executor.ray_utils.RayWorkerWrapper object at 0x7f3c2c1b2e90>)\n"
                 f'  File "{SITE}/vllm/worker/worker_base.py", line 621, in execute_method\n'
                 "    raise e\n" + message)
    else:
        cause = message
    _engine_failed(b, t + 1.2, fmt, cause, ray=ray)
    return t + 2.2


def _nccl_lines(b: _Builder, ctx: JobContext, hang: float) -> float:
    """The first collective of the memory profiling run never completes between the nodes; PyTorch's
    NCCL watchdog aborts every rank after the timeout; Ray reports the dead workers; vLLM gives up."""
    fmt = VllmLogFormat(ctx.script.version, ctx.api_pid, ctx.api_pid + 136)
    ray = ctx.script.backend == "ray"
    timeout_ms = int(ctx.nccl_timeout_s * 1000)
    t = hang + ctx.nccl_timeout_s
    when = b.at(t)
    world = ctx.world
    rank = world - 1
    stamp = f"E{when:%m%d %H:%M:%S}.{when.microsecond:06d}123"
    work = (f"WorkNCCL(SeqNum=12, OpType=ALLREDUCE, NumelIn=14680064, NumelOut=14680064, "
            f"Timeout(ms)={timeout_ms}) ran for {timeout_ms + 82} milliseconds before timing out.")
    glog = [
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:616] [Rank {rank}] Watchdog caught collective operation "
        f"timeout: {work}",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:1785] [PG ID 2 PG GUID 3 Rank {rank}] Exception (either an "
        "error or timeout) detected by watchdog at work: 12, last enqueued NCCL work: 12, last completed NCCL "
        "work: 11.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:630] [Rank {rank}] Some NCCL operations have failed or timed "
        "out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on "
        "corrupted/incomplete data.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:636] [Rank {rank}] To avoid data inconsistency, we are "
        "taking the entire process down.",
        f"[rank{rank}]:[{stamp} ProcessGroupNCCL.cpp:1595] [PG ID 2 PG GUID 3 Rank {rank}] Process group "
        f"watchdog thread terminated with exception: [Rank {rank}] Watchdog caught collective operation "
        f"timeout: {work}",
        "terminate called after throwing an instance of 'c10::DistBackendError'",
        f"*** SIGABRT received at time={int(when.timestamp())} on cpu 37 ***",
    ]
    prefix = f"({_worker_prefix(ctx, rank)}) " if ray else ""
    for i, text in enumerate(glog):
        b.err(t + 0.001 * i, prefix + text)
    if ray and world > 1:
        other = f"({_worker_prefix(ctx, 0)}) "
        b.err(t + 0.4, other + glog[0].replace(f"rank{rank}", "rank0").replace(f"Rank {rank}", "Rank 0")
              + f" [repeated {world - 1}x across cluster] (Ray deduplicates logs by default. Set "
              "RAY_DEDUP_LOGS=0 to disable log deduplication, or see https://docs.ray.io/en/master/"
              "ray-observability/user-guides/configure-logging.html#log-deduplication for more options.)")
        node = rank // max(1, ctx.gpus_per_node)
        ip = ctx.ips[node]
        b.err(t + 1.5, f"(raylet, ip={ip}) A worker died or was killed while executing a task by an unexpected "
                       "system error. To troubleshoot the problem, check the logs for the dead worker. RayTask ID: "
                       "ffffffffffffffff3f1c0e8b2d6a4b1f9a7e5c0d01000000 Worker ID: 9b2f4c1d0e7a Node ID: "
                       f"4d8e2a6c1f3b Worker IP address: {ip} Worker port: 20012 Worker PID: {927 + rank * 7} "
                       "Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a "
                       "connection error code 2. End of file. There are some potential root causes. (1) The "
                       "process is killed by SIGKILL by OOM killer due to high memory usage. (2) ray stop --force "
                       "is called. (3) The worker is crashed unexpectedly due to SIGSEGV or other unexpected errors.")
        cause = ("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
                 "\tclass_name: RayWorkerWrapper\n"
                 "\tactor_id: 3f1c0e8b2d6a4b1f9a7e5c0d01000000\n"
                 f"\tpid: {927 + rank * 7}\n"
                 f"\tnamespace: 5b6e2c1a-0d3f-4e7b-9a8c-2f1e0d9c8b7a\n"
                 f"\tip: {ip}\n"
                 "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker "
                 "exit detail: Worker unexpectedly exits with a connection error code 2. End of file.")
        _engine_failed(b, t + 2.0, fmt, cause)
        return t + 3.0
    _engine_failed(b, t + 0.5, fmt, "torch.distributed.DistBackendError: " + glog[0].split("] ", 1)[-1],
                   ray=ray)
    return t + 1.5


# ---- SLURM's own lines --------------------------------------------------------------------------
def stepd_line(host: str, what: str, ident: str, when: _dt.datetime, due: str | None = None) -> str:
    """``slurmstepd-HOST: error: *** JOB 5 ON HOST CANCELLED AT 2026-11-28T11:53:17 ***`` (captures 13, 23, 85)."""
    tail = f" DUE TO {due}" if due else ""
    return f"slurmstepd-{host}: error: *** {what} {ident} ON {host} CANCELLED AT {_iso(when)}{tail} ***"


def uvicorn_shutdown_lines(pid: int) -> list[str]:
    return ["INFO:     Shutting down", "INFO:     Waiting for application shutdown.",
            "INFO:     Application shutdown complete.", f"INFO:     Finished server process [{pid}]"]


# ================================================================================================
# GPUs
# ================================================================================================
def _noise(*key: Any) -> float:
    """Deterministic pseudo-random number in [0, 1) for a key."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class GpuModel:
    """Memory, utilisation, power and temperature of each GPU of a job over its phases (MiB, %, W, C).

    ``weights_mib`` / ``kv_mib`` / ``activation_mib`` / ``context_mib`` per GPU come from the planner
    (``make_plan``): memory rises with the shards loaded, peaks at weights + activations while vLLM
    profiles, and settles at context + weights + KV cache.
    """

    phases: Phases
    world: int
    total_mib: int = 143771
    weights_mib: float = 81_442.0
    kv_mib: float = 39_466.0
    activation_mib: float = 11_776.0
    context_mib: float = 1024.0
    graphs: bool = False
    oom_rank: int | None = None
    oom_fraction: float = 0.6
    stale_mib: float = 0.0          # a leftover process on the OOM rank's GPU (oom fault)

    @classmethod
    def from_plan(cls, phases: Phases, world: int, plan: Any, *, total_mib: int, graphs: bool,
                  fault: str | None, oom_rank_: int | None, oom_fraction: float) -> "GpuModel":
        model = cls(phases=phases, world=world, total_mib=total_mib, graphs=graphs)
        if plan is not None:
            model.weights_mib = plan.weights_bytes_per_gpu / MiB
            model.kv_mib = plan.kv_cache_bytes_per_gpu / MiB
            model.activation_mib = plan.activation_bytes_per_gpu / MiB
            model.context_mib = plan.non_torch_bytes_per_gpu / MiB
        else:  # no plan (not a model the planner knows): 55% weights, the rest of 0.9 x total for KV
            model.weights_mib = 0.55 * total_mib
            model.activation_mib = 0.08 * total_mib
            model.context_mib = 1024.0
            model.kv_mib = max(0.0, 0.9 * total_mib - model.weights_mib - model.activation_mib - 1024.0)
        if fault == "oom" and oom_rank_ is not None:
            model.oom_rank = oom_rank_
            model.oom_fraction = oom_fraction
            model.stale_mib = max(0.0, total_mib - 1045 - model.process_mib_at_oom())
        return model

    def process_mib_at_oom(self) -> float:
        return self.context_mib + self.weights_mib * self.oom_fraction

    def memory_mib(self, rank: int, t: float) -> float:
        """vLLM's memory on the GPU of ``rank`` at ``t`` (sim seconds after the job started)."""
        p = self.phases
        stale = self.stale_mib if rank == self.oom_rank else 0.0
        if rank >= self.world or p.cuda is None or t < p.cuda:
            return stale
        ctx = self.context_mib * min(1.0, (t - p.cuda) / 2.0)
        jitter = 3.0 * rank
        if p.load0 is None or t < p.load0:
            return stale + ctx + (jitter if t - p.cuda > 2 else 0)
        span = max(1e-6, (p.load1 or p.load0) - p.load0)
        frac = min(1.0, (t - p.load0) / span)
        if rank == self.oom_rank and p.oom is not None and t >= p.oom:
            return self.total_mib - 1045.0
        base = stale + self.context_mib + jitter
        if frac < 1.0:
            return base + self.weights_mib * frac
        if p.hang is not None and t >= p.hang:
            return base + self.weights_mib + 0.3 * self.activation_mib
        if p.kv is None or t < p.kv:
            after = t - (p.load1 or t)
            return base + self.weights_mib + self.activation_mib * min(1.0, after / 4.0)
        settle = min(1.0, (t - p.kv) / 1.0)
        return base + self.weights_mib + self.activation_mib * (1 - settle) + self.kv_mib * settle \
            + (600.0 if self.graphs and p.ready is not None and t >= p.ready else 0.0)

    def activity(self, rank: int, t: float, busy: bool) -> str:
        p = self.phases
        if rank >= self.world or p.cuda is None or t < p.cuda:
            return "idle"
        if p.hang is not None and t >= p.hang:
            return "hang"
        if p.load0 is not None and p.load1 is not None and p.load0 <= t < p.load1:
            return "loading"
        if p.load1 is not None and t >= p.load1 and (p.ready is None or t < p.ready):
            return "profiling" if p.kv is None or t < p.kv + 1.0 else ("graphs" if self.graphs else "init")
        if p.ready is not None and t >= p.ready:
            return "serving" if busy else "idle"
        return "init"

    def sample(self, node: str, index: int, rank: int, t: float, busy: bool) -> dict[str, float]:
        """memory.used (MiB), utilization.gpu (%), power.draw (W), temperature.gpu (C)."""
        mem = self.memory_mib(rank, t)
        act = self.activity(rank, t, busy)
        tick = int(t // 2)
        n = _noise(node, index, tick)
        util, power = {
            "idle": (0, 112 + 12 * _noise(node, index)),
            "init": (int(5 * n), 150 + 20 * n),
            "loading": (int(4 * n), 135 + 30 * n),
            "profiling": (90 + int(10 * n), 430 + 160 * n),
            "graphs": (40 + int(40 * n), 300 + 150 * n),
            "serving": (88 + int(12 * n), 560 + 130 * n),
            "hang": (100, 240 + 60 * n),
        }[act]
        if rank == self.oom_rank and self.stale_mib and act == "idle":
            util, power = 0, 121.0 + 4 * n
        temp = 31 + (power - 100) / 600 * 26 + 3 * _noise(node, index, "t")
        return {"memory_used": round(mem), "utilization": util, "power": round(power, 2),
                "temperature": round(temp)}


def gpu_uuid(cluster: str, node: str, index: int) -> str:
    h = hashlib.sha256(f"{cluster}/{node}/{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# ================================================================================================
# Hostlists
# ================================================================================================
def compress_hostlist(names: list[str]) -> str:
    """``gpu01,gpu02,gpu04`` -> ``gpu[01-02,04]`` (SLURM's compressed form; order kept by prefix)."""
    groups: dict[tuple[str, int], list[int]] = {}
    order: list[tuple[str, int]] = []
    plain: list[str] = []
    for name in names:
        m = re.match(r"^(.*?)(\d+)$", name)
        if not m:
            plain.append(name)
            continue
        key = (m.group(1), len(m.group(2)))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(int(m.group(2)))
    parts: list[str] = []
    for prefix, width in order:
        nums = sorted(set(groups[(prefix, width)]))
        if len(nums) == 1:
            parts.append(f"{prefix}{nums[0]:0{width}d}")
            continue
        ranges: list[str] = []
        start = prev = nums[0]
        for n in nums[1:] + [None]:  # type: ignore[list-item]
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append(f"{start:0{width}d}" + (f"-{prev:0{width}d}" if prev != start else ""))
            if n is not None:
                start = prev = n
        parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(parts + plain)


__all__ = ["Entry", "FAULTS", "GpuModel", "JobContext", "JobScript", "Phases", "ScriptError", "build_timeline",
           "compress_hostlist", "gpu_uuid", "oom_rank", "parse_mem_mb", "parse_sbatch_args", "parse_script",
           "profile_from_script", "stepd_line", "uvicorn_shutdown_lines"]
