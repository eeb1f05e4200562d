"""Reach the vLLM server of a deployment: ``async with open_server(job_id) as (base_url, api_key)``.

Finds the deployment record (cluster, port, key file), asks SLURM for the head node (BatchHost),
opens a local port-forward bound to 127.0.0.1 over the cluster's single SSH connection (or, on the
login node itself, connects directly), and reads the deployment's API key file over the same
connection. ``base_url`` has no ``/v1`` suffix (``VllmClient`` accepts either).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from r1console.adapters import deployments
from r1console.adapters.connect import make_transport, terminal_prompt
from r1console.adapters.slurm_client import JobStateError, SlurmClient, remember_batch_host
from r1console.adapters.transport import PromptCallback, Transport
from r1console.core.errors import R1Error
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
            yield forward.url, api_key
        finally:
            await forward.close()
    finally:
        if own:
            await tr.close()


__all__ = ["cluster_for", "open_server"]
