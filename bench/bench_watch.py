"""Cost of watching one job, and log latency: r1console vs the seed's way, side by side.

Needs the real test cluster (tests/infra/slurm-cluster.sh start): real SLURM, real OpenSSH sshd.

1. Idle cost of watching one RUNNING job for ``--idle-s`` seconds, with a state poll every
   ``--tick`` seconds and both logs (.out, .err) followed, as the job screen does:
   * r1console: ONE asyncssh connection (opened before the window), one ``squeue`` channel per
     tick, one long-lived ``tail -F`` channel per log.
   * the seed's way: OpenSSH subprocesses, ``ssh HOST squeue ...`` per tick (a new connection and
     handshake every time) plus one long-lived ``ssh HOST tail -f`` per log.
   Reported: CPU of this process + its ssh children during the window (% of one core), SSH
   handshakes during the window, TCP connections to sshd open at once (max), remote commands per tick.
2. Latency: a job prints ``--lines`` lines, each stamped with the time it is written
   (``date +%s.%N`` on the compute node; same machine, same clock), at random 20-200 ms gaps. Each
   side follows the .out and stamps arrival per line. p50/p90/p99/max in ms.

Run: python bench/bench_watch.py [--idle-s 60] [--tick 2] [--lines 300]   (about 3-4 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from plugins.slurm_cluster import _make_cluster, _parse_exports, _script  # noqa: E402
from r1console.adapters.slurm_client import SlurmClient, load_profile_for_cluster  # noqa: E402
from r1console.adapters.ssh_transport import SSHTransport  # noqa: E402
from r1console.core.slurm_parse import SQUEUE_FORMAT  # noqa: E402
from r1console.core.userconfig import ClusterSpec  # noqa: E402

TICKER = ('for i in $(seq 1 {n}); do printf "tick %05d %s\\n" "$i" "$(date +%s.%N)"; '
          'sleep "0.$(printf %03d $((RANDOM % 181 + 20)))"; done; sleep 2; exit 0')


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_reaped_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def live_children_cpu() -> dict[int, float]:
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            out[child.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def ssh_connections(port: int) -> int:
    """TCP connections to sshd held by this process and its children."""
    count = 0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            count += sum(1 for c in proc.net_connections(kind="tcp")
                         if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)
        except psutil.Error:
            pass
    return count


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)

    def pct(p: float) -> float:
        if not values:
            return float("nan")
        k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
        return values[k]

    return {"n": len(values), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": values[-1] if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


class Setup:
    def __init__(self, cluster, tmp: Path):
        self.cluster = cluster
        self.tmp = tmp
        os.environ["R1CONSOLE_STATE_DIR"] = str(tmp / "state")
        self.workdir = cluster.make_workdir("bench-watch")
        self.spec = ClusterSpec(name="bench", ssh_host=cluster.ssh_host, ssh_config=cluster.ssh_config,
                                workdir=str(self.workdir), partition=cluster.partition)
        self.jobs: list[str] = []

    def profile(self, name: str, setup: list[str]) -> str:
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps({"name": name, "slurm": {"nodes": 1, "gpus_per_node": 0, "time": "00:20:00",
                                                            "job_name": f"bench-{name}"},
                                    "env": {"setup": setup}, "model": {"path": "/nonexistent"},
                                    "vllm": {"version": "0.8.5"}}))
        return str(path)

    async def submit_running(self, client: SlurmClient, name: str, setup: list[str]):
        dep = await client.submit(load_profile_for_cluster(self.profile(name, setup), self.spec))
        self.jobs.append(dep.job_id)
        while True:
            info = await client.job_state(dep.job_id)
            if info.batch_host:
                return dep, info
            if info.is_finished:
                raise RuntimeError(f"bench job {dep.job_id} ended early: {info.state}")
            await asyncio.sleep(0.2)

    def cleanup(self) -> None:
        for job in self.jobs:
            self.cluster.run(["scancel", job], timeout=30)


# ---- r1console -----------------------------------------------------------------------------------------

async def r1_idle(tr: SSHTransport, client: SlurmClient, job_id: str, paths: list[str], seconds: float,
                  tick: float, port: int) -> dict:
    followers = [client.follow(p, 0) for p in paths]
    received = [0]

    async def drain(f):
        async for chunk in f:
            received[0] += len(chunk)

    tasks = [asyncio.create_task(drain(f)) for f in followers]
    await asyncio.sleep(1.0)  # channels open, initial content read
    c0, conn0, cmd0, t0 = cpu_self(), tr.stats.connects, tr.stats.commands, time.monotonic()
    ticks, max_conns = 0, 0
    while time.monotonic() - t0 < seconds:
        await client.job_state(job_id)
        ticks += 1
        max_conns = max(max_conns, ssh_connections(port))
        await asyncio.sleep(max(0.0, t0 + ticks * tick - time.monotonic()))
    wall = time.monotonic() - t0
    cpu = cpu_self() - c0
    result = {"cpu_pct": 100 * cpu / wall, "handshakes": tr.stats.connects - conn0, "max_conns": max_conns,
              "cmds_per_tick": (tr.stats.commands - cmd0) / ticks, "ticks": ticks, "wall": wall}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for f in followers:
        await f.aclose()
    return result


async def r1_latency(client: SlurmClient, job_id: str, path: str, lines: int, tick: float) -> list[float]:
    latencies: list[float] = []
    follower = client.follow(path, 0)
    buf = bytearray()

    async def read():
        async for chunk in follower:
            now = time.time()
            buf.extend(chunk)
            while (nl := buf.find(b"\n")) >= 0:
                line, buf[:] = bytes(buf[:nl]), buf[nl + 1:]
                parts = line.split()
                if len(parts) == 3 and parts[0] == b"tick":
                    latencies.append((now - float(parts[2])) * 1000)
                    if len(latencies) >= lines:
                        return

    async def poll():
        while True:
            await client.job_state(job_id)
            await asyncio.sleep(tick)

    poller = asyncio.create_task(poll())
    try:
        await asyncio.wait_for(read(), lines * 0.5 + 60)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await follower.aclose()
    return latencies


# ---- the seed's way: OpenSSH subprocesses ---------------------------------------------------------------

def ssh_argv(cluster, argv: list[str]) -> list[str]:
    return ["ssh", "-F", cluster.ssh_config, cluster.ssh_host, *[shlex.quote(a) for a in argv]]


async def seed_poll(cluster, job_id: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *ssh_argv(cluster, ["squeue", "-h", "-t", "all", "-j", job_id, "-o", SQUEUE_FORMAT]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    await proc.communicate()


async def seed_tail(cluster, path: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *ssh_argv(cluster, ["tail", "-c", "+1", "-f", path]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)


async def seed_idle(cluster, job_id: str, paths: list[str], seconds: float, tick: float) -> dict:
    tails = [await seed_tail(cluster, p) for p in paths]

    async def drain(proc):
        while await proc.stdout.read(65536):
            pass

    tasks = [asyncio.create_task(drain(p)) for p in tails]
    await asyncio.sleep(1.0)
    live0 = live_children_cpu()
    c0, r0, t0 = cpu_self(), cpu_reaped_children(), time.monotonic()
    ticks, max_conns = 0, 0
    while time.monotonic() - t0 < seconds:
        poll = asyncio.create_task(seed_poll(cluster, job_id))
        await asyncio.sleep(0.15)  # sample while the poll's connection is up
        max_conns = max(max_conns, ssh_connections(cluster.ssh_port))
        await poll
        ticks += 1
        await asyncio.sleep(max(0.0, t0 + ticks * tick - time.monotonic()))
    wall = time.monotonic() - t0
    live1 = live_children_cpu()
    live = sum(live1.get(pid, 0.0) - cpu for pid, cpu in live0.items())
    cpu = (cpu_self() - c0) + (cpu_reaped_children() - r0) + live
    for p in tails:
        p.kill()
        await p.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"cpu_pct": 100 * cpu / wall, "handshakes": ticks, "max_conns": max_conns, "cmds_per_tick": 1.0,
            "ticks": ticks, "wall": wall}


async def seed_latency(cluster, job_id: str, path: str, lines: int, tick: float) -> list[float]:
    latencies: list[float] = []
    proc = await seed_tail(cluster, path)

    async def read():
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            now = time.time()
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"tick":
                latencies.append((now - float(parts[2])) * 1000)
                if len(latencies) >= lines:
                    return

    async def poll():
        while True:
            await seed_poll(cluster, job_id)
            await asyncio.sleep(tick)

    poller = asyncio.create_task(poll())
    try:
        await asyncio.wait_for(read(), lines * 0.5 + 60)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        proc.kill()
        await proc.wait()
    return latencies


# ---- main ----------------------------------------------------------------------------------------------

async def main(args) -> None:
    status = _script("status", timeout=60)
    if status.returncode != 0:
        sys.exit("the test cluster is not running: sudo bash tests/infra/slurm-cluster.sh start")
    cluster = _make_cluster(_parse_exports(_script("env").stdout))
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        setup = Setup(cluster, Path(tmp))
        try:
            async with SSHTransport(setup.spec) as tr:
                client = SlurmClient(tr, setup.spec)
                dep, info = await setup.submit_running(client, "idle", ["sleep 1200"])
                paths = [client.log_path(info, s, dep) for s in ("out", "err")]
                print(f"idle job {dep.job_id} on {info.batch_host}; watching {args.idle_s:g} s each way, "
                      f"tick {args.tick:g} s", file=sys.stderr)
                r1 = await r1_idle(tr, client, dep.job_id, paths, args.idle_s, args.tick, cluster.ssh_port)
                seed = await seed_idle(cluster, dep.job_id, paths, args.idle_s, args.tick)
                await client.cancel(dep.job_id)

                lat = {}
                for who in ("r1console", "seed"):
                    dep, info = await setup.submit_running(client, f"ticker-{who}", [TICKER.format(n=args.lines)])
                    path = client.log_path(info, "out", dep)
                    print(f"latency ({who}): job {dep.job_id}, {args.lines} lines", file=sys.stderr)
                    if who == "r1console":
                        lat[who] = await r1_latency(client, dep.job_id, path, args.lines, args.tick)
                    else:
                        lat[who] = await seed_latency(cluster, dep.job_id, path, args.lines, args.tick)
                    await client.cancel(dep.job_id)
        finally:
            setup.cleanup()

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.1f}x" if a > 0 else ("-" if b == 0 else "inf")

    rows = [
        ("CPU, % of one core (ours + ssh children)", f"{r1['cpu_pct']:.2f}", f"{seed['cpu_pct']:.2f}",
         ratio(r1["cpu_pct"], seed["cpu_pct"])),
        (f"SSH handshakes during the {args.idle_s:g} s window", str(r1["handshakes"]), str(seed["handshakes"]), ""),
        ("TCP connections to sshd (max at once)", str(r1["max_conns"]), str(seed["max_conns"]), ""),
        ("remote commands per poll tick", f"{r1['cmds_per_tick']:.2f}", f"{seed['cmds_per_tick']:.2f}", ""),
        ("poll ticks", str(r1["ticks"]), str(seed["ticks"]), ""),
    ]
    pr, ps = percentiles(lat["r1console"]), percentiles(lat["seed"])
    for key in ("p50", "p90", "p99", "max"):
        rows.append((f"log line latency {key} (ms)", f"{pr[key]:.0f}", f"{ps[key]:.0f}", ratio(pr[key], ps[key])))
    rows.append(("lines measured", str(pr["n"]), str(ps["n"]), ""))
    width = [max(len(r[i]) for r in rows + [("metric", "r1console", "seed way", "seed/r1")]) for i in range(4)]
    header = ("metric", "r1console", "seed way", "seed/r1")
    print("  ".join(h.ljust(w) for h, w in zip(header, width)))
    print("  ".join("-" * w for w in width))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)))
    goals = [("one SSH connection, no handshake after connect", r1["max_conns"] == 1 and r1["handshakes"] == 0),
             ("at most one remote command per tick", r1["cmds_per_tick"] <= 1.0 + 1e-9),
             ("under 2 % of a core", r1["cpu_pct"] < 2.0),
             ("p99 latency <= 1 s", pr["p99"] <= 1000)]
    print()
    for text, ok in goals:
        print(f"goal: {text}: {'met' if ok else 'NOT MET'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--tick", type=float, default=2.0)
    parser.add_argument("--lines", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
