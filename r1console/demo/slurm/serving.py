"""The job's vLLM server: an in-process ``SimServer`` started when the job's log says the server is up,
and where a ``host:port`` of a node answers on this machine (the server, or a refusing port while it loads)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from r1console.demo.slurm.model import SimJob


class JobServing:
    """The job servers of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _start_server(self, job: SimJob) -> None:
        from r1console.demo.sim_server import SimServer, SimServerConfig

        script, profile = job.script, job.profile
        assert script is not None
        key = None
        if script.key_file:
            with contextlib.suppress(OSError):
                key = Path(script.key_file).read_text(encoding="utf-8").strip() or None
        v = profile.vllm if profile is not None else None
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": job.local_port or 0, "vllm_version": script.version,
            "model": profile.model.path if profile is not None else "/path/to/DeepSeek-R1",
            "served_model_name": profile.model.served_name if profile is not None else None,
            "api_key": key, "job_id": str(job.job_id), "max_num_seqs": (v.max_num_seqs if v else None) or 256,
            "max_num_batched_tokens": (v.max_num_batched_tokens if v else None) or 8192,
            "max_model_len": (v.max_model_len if v else None) or 163_840,
            "time_scale": self.time_scale, "seed": job.job_id, "stats_interval_s": 10.0 * self.time_scale,
        }
        if job.plan is not None:
            options["kv_cache_tokens"] = job.plan.kv_tokens_per_gpu
        known = {f.name for f in dataclasses.fields(SimServerConfig)}
        options = {k: val for k, val in options.items() if k in known}
        if job.bound is not None:
            job.bound.close()
            job.bound = None
        server = SimServer(**options)
        try:
            try:
                await server.start()
            except OSError:  # the port went to someone else between close and bind: any free port
                server = SimServer(**{**options, "port": 0})
                await server.start()
        except asyncio.CancelledError:  # scancel while the server was starting
            with contextlib.suppress(Exception):
                await server.stop()
            raise
        # Our playback writes the "server ready" lines with the profile's host:port; from now on the
        # server's own access and stats lines go to the job's files.
        server.config.log_stream = job.out_fh
        server.config.err_stream = job.err_fh
        job.server = server
        job.local_port = server.port

    async def _stop_server(self, job: SimJob) -> None:
        server, job.server = job.server, None
        if server is not None:
            server.config.log_stream = None
            server.config.err_stream = None
            with contextlib.suppress(Exception):
                await server.stop()
        if job.bound is not None:
            job.bound.close()
            job.bound = None

    async def forward(self, host: str, port: int) -> tuple[str, int]:
        """Where ``host:port`` (as seen from the login node) answers on this machine: the job's server,
        or a bound-but-not-listening port that refuses connections, as a real node does while vLLM
        loads (vLLM binds its port before the engine starts; uvicorn listens only at the end)."""
        short = host.split(".")[0]
        node = self.nodes.get(short) or next((n for n in self.nodes.values() if n.ip == host), None)
        if node is None:
            raise LookupError(f"{host}: Name or service not known")
        for job in self.jobs.values():
            if job.state == "RUNNING" and job.batch_host == node.name and job.script is not None \
                    and job.script.port == int(port):
                if job.server is not None:
                    return "127.0.0.1", int(job.server.port)
                if job.bound is not None and job.local_port:
                    return "127.0.0.1", job.local_port
        assert self._refuser is not None
        return "127.0.0.1", self._refuser.getsockname()[1]
