"""Everything a simulated job writes to ``job.%N.%j.out`` / ``.err``, each line with its time
(:func:`build_timeline`): the script's markers, ``ray start`` on every node, vLLM's startup, a fault's lines.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from r1console.demo.sim_logs import LogLine, StartupSpec, startup_log_lines
from r1console.demo.slurm.job.context import Entry, JobContext, Phases, _Builder
from r1console.demo.slurm.job.faults import _nccl_lines, _oom_lines, _ray_node_lost_lines
from r1console.demo.slurm.job.gpu import GpuModel
from r1console.demo.slurm.job.hostlist import compress_hostlist


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


def build_timeline(ctx: JobContext, model: "GpuModel | None" = None) -> tuple[list[Entry], Phases]:
    """Everything the job prints (and its actions), sorted by time; and when its phases happen."""
    b = _Builder(ctx)
    phases = Phases()
    if not _script_start(b, ctx, phases):
        return _sorted(b.entries), phases
    t = _head_and_ray(b, ctx) + 0.2
    if ctx.script.markers:
        b.out(t, "[r1console] vllm_starting")
    v0 = t + 0.5
    phases.vllm = v0
    b.action(v0, "vllm_bind")
    lines = startup_log_lines(_startup_spec(ctx), ctx.start + _dt.timedelta(seconds=v0))
    rel = _startup_offsets(lines)
    for name in ("cuda", "load0", "load1", "kv"):
        setattr(phases, name, v0 + rel[name] if rel[name] is not None else None)
    cut = _fault_cut(ctx, rel)
    if ctx.script.backend == "ray" and rel["pg"] is not None:
        _ray_driver_lines(b, ctx, v0 + (rel["pg"] - 1.0))
    _play_vllm(b, lines, v0, rel["ready"], cut, phases)
    if cut is not None and _fault_lines(b, ctx, phases, v0 + cut, model):
        return _sorted(b.entries), phases
    if phases.end is not None:
        if ctx.script.markers:
            b.out(phases.end, "[r1console] vllm_exited code=1")
        b.action(phases.end + 0.1, "exit", 1)
    return _sorted(b.entries), phases


def _script_start(b: _Builder, ctx: JobContext, phases: Phases) -> bool:
    """The script's first markers; False when it stops there (the API key file cannot be read)."""
    s = ctx.script
    if not s.markers:
        return True
    b.out(0.0, f"[r1console] rendered_by=r1console {s.settings.get('R1C_RENDERED_BY', '?')} "
               f"profile={s.settings.get('R1C_PROFILE', '')} vllm={s.version}")
    b.out(0.0, f"[r1console] job_id={ctx.job_id} nodelist={compress_hostlist(ctx.nodes)}")
    b.out(0.0, f"[r1console] workdir={s.settings.get('R1C_WORKDIR', '')}")
    if ctx.key_readable or not s.key_file:
        return True
    msg = f"[r1console] FATAL api_key_missing cannot read the API key file {s.key_file}"
    b.out(0.2, msg)
    b.err(0.2, msg)
    b.action(0.3, "exit", 1)
    phases.end = 0.3
    return False


def _head_and_ray(b: _Builder, ctx: JobContext) -> float:
    """The head node's lines and, with Ray, ``ray start`` on every node until the cluster is ready; the time
    after them."""
    s = ctx.script
    t = 0.3
    b.out(t, f"Head node: {ctx.head}")
    if s.markers:
        b.out(t, f"[r1console] head_node={ctx.head}")
        b.out(t, f"[r1console] head_ip={ctx.head_ip}")
        b.out(t, f"[r1console] port={s.port}")
    if s.backend != "ray":
        return t
    gpn, address = ctx.gpus_per_node, f"{ctx.head_ip}:{ctx.ray_port}"
    if s.markers:
        b.out(0.4, f"[r1console] ray_head={address}")
    up = _ray_start_block(b, 1.2, ctx.head_ip, address, head=True, job_id=str(ctx.job_id))
    t = up + 2.9  # the script's first successful `ray.nodes()` after the head came up (polls every 3 s)
    workers = ctx.nodes[1:]
    for node in workers:
        if s.markers:
            b.out(t, f"[r1console] ray_worker node={node}")
    for i in range(len(workers)):
        _ray_start_block(b, t + 3.0 + 0.2 * i, ctx.ips[i + 1], address, head=False, job_id=str(ctx.job_id))
    t += 2.5
    if workers and s.markers:
        b.out(t, f"[r1console] ray_waiting nodes=1/{len(ctx.nodes)} gpus={gpn}/{gpn * len(ctx.nodes)}")
        t += 7.0  # sleep 5 + one ray.init
    if s.markers:
        b.out(t, f"[r1console] ray_ready nodes={len(ctx.nodes)} gpus={gpn * len(ctx.nodes)}")
    return t


def _startup_spec(ctx: JobContext) -> StartupSpec:
    """What vLLM's startup log (sim_logs) depends on, from the job's profile (or its script)."""
    s, profile = ctx.script, ctx.profile
    overrides: dict[str, Any] = dict(load_seconds=ctx.load_seconds, head_ip=ctx.head_ip,
                                     worker_ips=tuple(ctx.ips[1:]), api_pid=ctx.api_pid)
    if ctx.kv_cache_tokens:
        overrides["kv_cache_tokens"] = ctx.kv_cache_tokens
    if profile is not None:
        spec = StartupSpec.from_profile(profile, **overrides)
    else:
        spec = StartupSpec(version=s.version, port=s.port, nodes=len(ctx.nodes), gpus_per_node=ctx.gpus_per_node,
                           tensor_parallel_size=ctx.world, backend=s.backend, **overrides)
    spec.nodes = len(ctx.nodes)
    spec.gpus_per_node = ctx.gpus_per_node
    return spec


def _startup_offsets(lines: list[LogLine]) -> dict[str, float | None]:
    """When (seconds after vLLM started) the startup reaches each step the job's phases follow."""
    bars = [ln.offset_s for ln in lines if ln.cr]
    return {
        "cuda": _first(lines, "world size"),
        "load0": bars[0] if bars else None,
        "load1": bars[-1] if bars else None,
        "model": _first(lines, "Model loading took"),
        "kv": _first(lines, "Available KV cache memory", "KV cache size"),
        "ready": _first(lines, "Starting vLLM API server", "Starting vLLM server"),
        "pg": _first(lines, "placement group"),
    }


def _fault_cut(ctx: JobContext, rel: dict[str, float | None]) -> float | None:
    """The offset from which vLLM's lines are never printed (a fault ends the job), or None."""
    load0, load1, model, ready = rel["load0"], rel["load1"], rel["model"], rel["ready"]
    if ctx.fault == "oom" and load0 is not None and load1 is not None:
        return load0 + ctx.oom_fraction * (load1 - load0)
    if ctx.fault == "nccl" and model is not None:
        return model + 0.5
    if ctx.fault == "ray_node_lost" and ctx.script.backend == "ray" and len(ctx.nodes) > 1 and ready is not None:
        return ready + 20.0  # serving for a while, then the last node's `ray start` step is killed
    return None


def _ray_driver_lines(b: _Builder, ctx: JobContext, when: float) -> None:
    """vLLM's driver joining the job's Ray cluster (Ray 2.60, captured in tests/data/ray-2node/)."""
    b.ray(when, "INFO", "worker.py:1691",
          f"Using address {ctx.head_ip}:{ctx.ray_port} set in the environment variable RAY_ADDRESS")
    b.ray(when, "INFO", "worker.py:1841",
          f"Connecting to existing Ray cluster at address: {ctx.head_ip}:{ctx.ray_port}...")
    b.ray(when + 0.1, "INFO", "worker.py:2038", "Connected to Ray cluster.")


def _play_vllm(b: _Builder, lines: list[LogLine], v0: float, ready: float | None, cut: float | None,
               phases: Phases) -> None:
    """vLLM's startup lines from ``v0`` on (up to ``cut``), with the server up when the ready line comes."""
    server_started = False
    for ln in lines:
        if cut is not None and ln.offset_s > cut:
            break
        if not server_started and ready is not None and ln.offset_s >= ready:
            b.action(v0 + ready, "server_up")
            phases.ready = v0 + ready
            server_started = True
        b.line(v0 + ln.offset_s, ln.stream, ln.text, ln.cr)


def _fault_lines(b: _Builder, ctx: JobContext, phases: Phases, when: float, model: "GpuModel | None") -> bool:
    """The fault's lines from ``when`` on and when the job ends; True when the script has stopped already
    (a lost Ray node: it stops on its own marker, no ``vllm_exited``)."""
    if ctx.fault == "oom":
        phases.oom = when
        phases.end = _oom_lines(b, ctx, when, model)
    elif ctx.fault == "nccl":
        phases.hang = when + 0.5
        phases.end = _nccl_lines(b, ctx, phases.hang)
    elif ctx.fault == "ray_node_lost":
        phases.end = _ray_node_lost_lines(b, ctx, when)
        b.action(phases.end + 0.1, "exit", 1)
        return True
    return False


def _sorted(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e.t)  # stable: same-time entries keep their order
