"""Reach the vLLM server of a deployment: ``async with open_server(job_id) as (base_url, api_key)``.

Finds the deployment record (cluster, port, key file), asks SLURM for the head node (BatchHost),
opens a local port-forward bound to 127.0.0.1 over the cluster's single SSH connection (or, on the
login node itself, connects directly), and reads the deployment's API key file over the same
connection. ``base_url`` has no ``/v1`` suffix (``VllmClient`` accepts either).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from r1console.adapters import deployments
from r1console.adapters.connect import make_transport, terminal_prompt
from r1console.adapters.slurm_client import JobStateError, SlurmClient, remember_batch_host
from r1console.adapters.transport import PromptCallback, Transport
from r1console.core.api_errors import ServerUnreachable
from r1console.core.errors import R1Error
from r1console.core.exposure import AUTH_SCHEME, IDENTITY_PATH, check_identity, new_challenge
from r1console.core.userconfig import ClusterSpec, load_user_config


def cluster_for(dep: deployments.Deployment, requested: str | None = None) -> ClusterSpec:
    """The ClusterSpec a record was submitted with (its config entry, or rebuilt from the record)."""
    config = load_user_config()
    name = requested or dep.cluster
    if name in config.clusters or name == "local":
        return config.cluster(name)
    if dep.transport == "local":
        return ClusterSpec(name=name, transport="local")
    return ClusterSpec(name=name, ssh_host=dep.ssh_host or name)


@contextlib.asynccontextmanager
async def open_server(job_id: str, cluster: str | None = None, *, prompt: PromptCallback | None = terminal_prompt,
                      transport: Transport | None = None) -> AsyncIterator[tuple[str, str | None]]:
    """Yield ``(base_url, api_key)`` for the vLLM server of job ``job_id``.

    ``transport``: reuse an open transport to the right cluster (the TUI keeps one per cluster);
    otherwise one is opened for the duration of the block. Raises R1Error with a clear message
    when there is no record, the job is not running, or the key file cannot be read.
    """
    dep = deployments.find(str(job_id), cluster)
    if dep is None:
        where = f" on {cluster}" if cluster else ""
        raise R1Error(f"no deployment record for job {job_id}{where}: r1console only reaches jobs it submitted",
                      hint="`r1console status` lists them; submit with `r1console submit PROFILE`")
    spec = cluster_for(dep, cluster)
    own = transport is None
    tr = transport or make_transport(spec, prompt)
    try:
        await tr.connect()
        client = SlurmClient(tr, spec)
        info = await client.job_state(dep.job_id)
        if not info.is_running:
            detail = f", {info.reason}" if info.reason else ""
            raise JobStateError(f"job {dep.job_id} is {info.state}{detail}: its server is not up",
                                hint=f"r1console wait {dep.job_id} --for ready")
        # a job id SLURM handed out again (after a restart or a purge) belongs to someone else's job
        user = (await tr.identity())[1]
        if (info.user and info.user != user) or (info.workdir and (info.workdir.rstrip("/") or "/") != dep.workdir):
            raise R1Error(f"job {dep.job_id} on {spec.name} is not deployment {dep.deployment_id} any more "
                          f"(user {info.user or '?'}, workdir {info.workdir or '?'}; the record says {user}, "
                          f"{dep.workdir}): SLURM reused the id. The key was not sent",
                          hint="`r1console status` lists your jobs")
        dep = remember_batch_host(dep, info) or dep
        head = info.batch_host or dep.batch_host or (info.node_list[0] if info.node_list else "")
        if not head:
            raise R1Error(f"job {dep.job_id}: SLURM reports no batch host yet")
        api_key: str | None = None
        if dep.key_path:
            raw = await tr.read_file(dep.key_path, max_bytes=4096)
            api_key = raw.decode("utf-8", "replace").strip() or None
            if api_key is None:
                raise R1Error(f"the API key file {dep.key_path} of job {dep.job_id} is empty")
        forward = await tr.forward_local_port(head, dep.port)
        try:
            if api_key is not None and dep.auth == AUTH_SCHEME:
                await verify_identity(forward.url, api_key, dep.job_id, where=f"{head}:{dep.port}")
            yield forward.url, api_key
        finally:
            await forward.close()
    finally:
        if own:
            await tr.close()


async def verify_identity(url: str, api_key: str, job_id: str, *, where: str, timeout: float = 15.0) -> None:
    """Before the key goes anywhere: the server at ``url`` proves it holds it (core.exposure).

    ServerUnreachable when nothing answers yet (vLLM still loading); IdentityError when something
    answers but cannot prove it is job ``job_id``'s server. The request carries no key.
    """
    challenge = new_challenge()
    try:
        # a proxy from the environment must not capture the forwarded 127.0.0.1 port
        async with httpx.AsyncClient(base_url=url, timeout=timeout, trust_env=False,
                                     follow_redirects=False) as http:
            response = await http.get(IDENTITY_PATH, params={"challenge": challenge})
    except httpx.HTTPError as err:
        raise ServerUnreachable(f"job {job_id}'s server at {where} is not answering yet "
                                f"({type(err).__name__})", hint=f"r1console wait {job_id} --for ready") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    check_identity(response.status_code, body, key=api_key, job_id=job_id, challenge=challenge, where=where)


__all__ = ["cluster_for", "open_server", "verify_identity"]
