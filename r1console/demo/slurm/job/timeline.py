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
