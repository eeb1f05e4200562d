"""Keeps a deployment's replica set true to SLURM, runs the relay and idle stop (the serve loop).

Every ``poll_s`` :meth:`ServeController.refresh`:

1. asks SLURM (one ``squeue``) about the deployment's jobs;
2. opens a port forward over the ONE cluster connection (``adapters.reach.open_server`` with the
   shared transport) for each running job, and closes it for jobs that ended;
3. probes each replica's ``/health`` (with its key): healthy replicas take requests, others not;
4. scrapes each replica's ``/metrics`` for the token ledger and the idle watch;
5. feeds :class:`~r1console.core.relay.RelayChain` (one chain per replica slot) and
   :class:`~r1console.core.idle.IdleWatch` and carries out what they decide (submit a
   successor, drain and cancel the old job, resubmit a failed one, cancel an idle deployment);
6. saves the deployment record (chains, tokens, events).

The decisions are core code; this module only does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp

from r1console.adapters import deployment_groups
from r1console.adapters.deployment_groups import Group
from r1console.adapters.reach import open_server
from r1console.adapters.slurm_client import SlurmClient, load_profile_for_cluster
from r1console.adapters.transport import Transport
from r1console.core.errors import R1Error
from r1console.core.idle import STOP, WARN, IdleWatch
from r1console.core.prometheus import GENERATION_TOKENS, PROMPT_TOKENS, REQUEST_SUCCESS, RUNNING, WAITING, parse_metrics
from r1console.core.relay import (
    CANCEL,
    GIVE_UP,
    PROMOTE,
    RESUBMIT,
    SUBMIT,
    JobView,
    RelayChain,
    RelayPolicy,
    format_span,
)
from r1console.core.replicas import DOWN, DRAINING, UP, Replica, ReplicaSet
from r1console.core.slurm_parse import JobInfo, parse_duration
from r1console.core.usage import TokenLedger
from r1console.core.userconfig import ClusterSpec


def _chain_to_dict(chain: RelayChain) -> dict:
    return {"current": chain.current, "successor": chain.successor, "draining": list(chain.draining),
            "restarts": chain.restarts, "gave_up": chain.gave_up}


def _chain_from_dict(policy: RelayPolicy, data: dict) -> RelayChain:
    return RelayChain(policy, current=data.get("current"), successor=data.get("successor"),
                      draining=list(data.get("draining") or []), restarts=int(data.get("restarts") or 0),
                      gave_up=bool(data.get("gave_up")))


class ServeController:
    def __init__(self, transport: Transport, spec: ClusterSpec, replicas: ReplicaSet, *,
                 jobs: list[str] | None = None, group: Group | None = None, proxy=None,
                 poll_s: float = 5.0, log: Callable[[str], None] = print, health_timeout_s: float = 5.0,
                 profile_dirs=None, clock: Callable[[], float] = time.time) -> None:
        if (jobs is None) == (group is None):
            raise ValueError("give jobs or a group")
        self.transport = transport
        self.spec = spec
        self.client = SlurmClient(transport, spec)
        self.replicas = replicas
        self.fixed_jobs = [str(j) for j in jobs] if jobs is not None else None
        self.group = group
        self.proxy = proxy
        self.poll_s = poll_s
        self.log = log
        self.health_timeout_s = health_timeout_s
        self.profile_dirs = profile_dirs
        self.clock = clock
        self.infos: dict[str, JobInfo] = {}
        self._forwards: dict[str, contextlib.AsyncExitStack] = {}
        self._session: aiohttp.ClientSession | None = None
        self._last_requests: dict[str, float] = {}
        self._in_flight: dict[str, float] = {}
        self._announced: dict[str, bool] = {}
        self._left: dict[str, float] = {}
        self.ledger = TokenLedger.from_dict(group.tokens if group else None)
        self.chains: list[RelayChain] = []
        self.idle: IdleWatch | None = None
        self.stopped = False
        if group is not None and group.relay:
            policy = RelayPolicy(**group.relay)
            if group.chains:
                self.chains = [_chain_from_dict(policy, c) for c in group.chains]
            else:
                self.chains = [RelayChain(policy, current=j) for j in group.jobs[-group.replicas:]]
        if group is not None and group.idle_stop_s:
            self.idle = IdleWatch(group.idle_stop_s)

    # ---- which jobs ----------------------------------------------------------------------
    def job_ids(self) -> list[str]:
        if self.fixed_jobs is not None:
            return list(self.fixed_jobs)
        assert self.group is not None
        if self.chains:
            ids: list[str] = []
            for chain in self.chains:
                ids += [j for j in chain.jobs() if j not in ids]
            return ids
        return list(self.group.jobs)

    # ---- lifecycle -----------------------------------------------------------------------
    async def close(self) -> None:
        for job in list(self._forwards):
            await self._detach(job)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``poll_s`` until ``stop`` is set (errors are logged, the loop goes on)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except R1Error as err:
                self.log(f"refresh: {err}")
            if self.stopped:
                stop.set()
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)

    # ---- one round -----------------------------------------------------------------------
    async def refresh(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.health_timeout_s))
        now = self.clock()
        ids = self.job_ids()
        # the user's whole queue, filtered here: `squeue -j` fails for every id once one is purged
        infos = {j.job_id: j for j in await self.client.queue() if j.job_id in ids} if ids else {}
        self.infos.update(infos)
        for job in ids:
            info = infos.get(job)
            if info is not None and info.is_running:
                if job not in self._forwards:
                    await self._attach(job)
            elif job in self._forwards:
                await self._detach(job)
        for job in list(self._forwards):
            if job not in ids:
                await self._detach(job)
        await asyncio.gather(*(self._probe(rep) for rep in self.replicas.all()))
        for rep in self.replicas.all():
            if rep.state == DOWN and not rep.meta.get("was_up"):
                # still loading: open the forward afresh next round (the demo's forward target
                # appears only once the server is up; an SSH forward is a cheap local listener)
                await self._detach(rep.name, quiet=True)
        if self.proxy is not None:
            self.proxy.replicas_changed()
        if self.chains:
            self._left = await self._time_left([j for j, i in infos.items() if i.is_running])
            await self._relay(now, infos)
        if self.idle is not None and not self.stopped:
            await self._idle(now)
        self._save()

    async def _attach(self, job: str) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            url, key = await stack.enter_async_context(
                open_server(job, self.spec.name, prompt=None, transport=self.transport))
        except R1Error as err:
            await stack.aclose()
            self.log(f"job {job}: not reachable yet ({err})")
            return
        self._forwards[job] = stack
        self.replicas.add(Replica(job, url, key, state=DOWN))
        if not self._announced.get(job):
            self._announced[job] = True
            self.log(f"job {job}: forwarded to {url}; waiting for /health")

    async def _detach(self, job: str, quiet: bool = False) -> None:
        stack = self._forwards.pop(job, None)
        rep = self.replicas.remove(job)
        if self.proxy is not None and rep is not None:
            aborted = self.proxy.abort_replica(job)
            if aborted and not quiet:
                self.log(f"job {job}: {aborted} request(s) still in flight on it moved or cut")
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        if rep is not None and not quiet:
            self.log(f"job {job}: left the endpoint ({rep.started} requests sent to it)")

    async def _probe(self, rep: Replica) -> None:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {rep.api_key}"} if rep.api_key else {}
        healthy = False
        try:
            async with self._session.get(rep.url + "/health", headers=headers) as resp:
                healthy = resp.status == 200
            if healthy:
                async with self._session.get(rep.url + "/metrics", headers=headers) as resp:
                    if resp.status == 200:
                        self._account(rep.name, await resp.text())
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            healthy = False
        if healthy and rep.state == DOWN:
            rep.meta["was_up"] = True
            self.replicas.mark_up(rep.name)
            self.log(f"job {rep.name}: ready, takes requests")
        elif not healthy and rep.state == UP:
            self.replicas.mark_down(rep.name)
            self.log(f"job {rep.name}: /health fails, no new requests")

    def _account(self, job: str, text: str) -> None:
        try:
            ms = parse_metrics(text)
        except R1Error:
            return
        gen = ms.first_value(GENERATION_TOKENS)
        prompt = ms.first_value(PROMPT_TOKENS)
        self.ledger.observe(job, gen[1] if gen else None, prompt[1] if prompt else None)
        done = ms.first_value(REQUEST_SUCCESS)
        running, waiting = ms.first_value(RUNNING), ms.first_value(WAITING)
        self._last_requests[job] = done[1] if done else 0.0
        self._in_flight[job] = (running[1] if running else 0.0) + (waiting[1] if waiting else 0.0)

    # ---- relay ---------------------------------------------------------------------------
    def _view(self, job: str, infos: dict[str, JobInfo]) -> JobView:
        info = infos.get(job)
        rep = self.replicas.get(job)
        if info is None:
            return JobView(job, "GONE")
        remaining = self._left.get(job)
        if remaining is None and info.time_limit is not None and info.time_used is not None:
            remaining = float(info.time_limit - info.time_used)
        return JobView(job, info.state, ready=rep is not None and rep.state in (UP, DRAINING),
                       remaining_s=remaining, outstanding=rep.outstanding if rep else 0)

    async def _time_left(self, jobs: list[str]) -> dict[str, float]:
        """squeue's own time left (%L: its end time minus now) of running jobs."""
        if not jobs:
            return {}
        result = await self.client._run(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i|%L"])
        left: dict[str, float] = {}
        if result.ok:
            for line in result.stdout.splitlines():
                job, _, text = line.strip().partition("|")
                seconds = parse_duration(text.strip())
                if job and seconds is not None:
                    left[job] = float(seconds)
        return left

    async def _relay(self, now: float, infos: dict[str, JobInfo]) -> None:
        assert self.group is not None
        for slot, chain in enumerate(self.chains):
            views = {j: self._view(j, infos) for j in chain.jobs()}
            for action in chain.step(now, views):
                self.group.note(f"relay[{slot}]: {action.kind} {action.job_id or ''} ({action.reason})")
                self.log(f"relay: {action.kind} {action.job_id or ''} — {action.reason}")
                if action.kind in (SUBMIT, RESUBMIT):
                    try:
                        dep = await self._submit()
                    except R1Error as err:
                        chain.submit_failed(now, str(err))
                        self.log(f"relay: submit failed: {err}")
                        continue
                    chain.submitted(dep.job_id, now)
                    self.log(f"relay: submitted job {dep.job_id}")
                elif action.kind == PROMOTE:
                    for old in chain.draining:
                        self.replicas.drain(old)
                        self.log(f"relay: endpoint moved to {chain.current}; job {old} drains")
                elif action.kind == CANCEL and action.job_id:
                    await self._cancel(action.job_id)
                    chain.cancelled(action.job_id, now)
                    await self._detach(action.job_id)
                elif action.kind == GIVE_UP:
                    self.group.stopped = f"relay gave up after {chain.restarts} restarts"
            for old in chain.draining:
                self.replicas.drain(old)

    async def _submit(self):
        assert self.group is not None
        loaded = load_profile_for_cluster(self.group.profile_ref or self.group.profile, self.spec,
                                          overrides=self.group.overrides, dirs=self.profile_dirs)
        dep = await self.client.submit(loaded, workdir=self.group.workdir)
        self.group.jobs.append(dep.job_id)
        return dep

    async def _cancel(self, job: str) -> None:
        try:
            await self.client.cancel(job, confirm_timeout=5.0)
        except R1Error as err:
            self.log(f"cancel {job}: {err}")

    # ---- idle stop -----------------------------------------------------------------------
    async def _idle(self, now: float) -> None:
        assert self.idle is not None and self.group is not None
        if not self.replicas.ready():
            # loading (or every replica down): nobody could use it, so the idle clock waits
            self.idle.last_used = None
            return
        counter = sum(self._last_requests.values()) + (self.proxy.requests_total if self.proxy else 0)
        in_flight = sum(self._in_flight.values()) + self.replicas.outstanding
        verdict = self.idle.observe(now, counter, in_flight)
        if verdict == WARN:
            msg = (f"deployment {self.group.name} unused for {format_span(self.idle.idle_for(now))}: "
                   f"it is cancelled in {format_span(self.idle.remaining(now))} unless it gets a request")
            self.group.note(msg)
            self.log(f"warning: {msg}")
        elif verdict == STOP:
            msg = f"deployment {self.group.name} unused for {format_span(self.idle.idle_stop_s)} (idle_stop): cancelling"
            self.group.note(msg)
            self.log(msg)
            for job in self.job_ids():
                info = self.infos.get(job)
                if info is not None and not info.is_finished:
                    await self._cancel(job)
                await self._detach(job)
            self.group.stopped = "idle_stop"
            self.stopped = True

    def _save(self) -> None:
        if self.group is None:
            return
        self.group.tokens = self.ledger.to_dict()
        if self.chains:
            self.group.chains = [_chain_to_dict(c) for c in self.chains]
        deployment_groups.save(self.group)


__all__ = ["ServeController", "serving"]


@contextlib.asynccontextmanager
async def serving(transport: Transport, spec: ClusterSpec, *, jobs: list[str] | None = None, group: Group | None = None,
                  api_key: str, host: str = "127.0.0.1", port: int = 0, poll_s: float = 5.0,
                  log: Callable[[str], None] = print, wait_ready_s: float | None = None, **proxy_options):
    """The endpoint + its refresh loop as one block: ``async with serving(...) as (proxy, ctl)``.

    ``wait_ready_s``: before yielding, wait this long at most for one replica to take requests
    (R1Error if none does). The transport must be connected; it is not closed here.
    """
    from r1console.adapters.serve_proxy import ServeProxy

    replicas = ReplicaSet()
    proxy = ServeProxy(replicas, api_key=api_key, host=host, port=port, **proxy_options)
    ctl = ServeController(transport, spec, replicas, jobs=jobs, group=group, proxy=proxy, poll_s=poll_s, log=log)
    stop = asyncio.Event()
    await proxy.start()
    task: asyncio.Task | None = None
    try:
        await ctl.refresh()
        if wait_ready_s is not None:
            deadline = time.monotonic() + wait_ready_s
            while not replicas.ready():
                if time.monotonic() >= deadline:
                    raise R1Error(f"no replica became ready within {wait_ready_s:g} s",
                                  hint="`r1console status` / `r1console wait JOBID --for ready`")
                await asyncio.sleep(min(1.0, poll_s))
                await ctl.refresh()
        task = asyncio.create_task(ctl.run(stop))
        yield proxy, ctl
    finally:
        stop.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        await ctl.close()
        await proxy.stop()
