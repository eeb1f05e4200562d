"""``srun --overlap --jobid``: the ``nvidia-smi`` queries of a job's nodes."""

from __future__ import annotations

import contextlib
import getopt
from dataclasses import dataclass
from typing import Any

from r1console.core.slurm_parse import expand_hostlist
from r1console.demo.sim_job import gpu_uuid
from r1console.demo.slurm.common import _SMI_FIELDS, ACTIVE
from r1console.demo.slurm.model import SimJob, SimNode


class SrunCommand:
    """The ``srun`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _srun(self, args: list[str]) -> tuple[int, str, str]:
        opts, command = _srun_options(args)
        if not command:
            return 1, "", "srun: fatal: No command given to execute.\n"
        job_text, count = opts.job_text, opts.count
        if job_text is None:
            return 1, "", "srun: error: Unable to allocate resources: the demo cluster runs only --jobid steps\n"
        job = self.job(job_text)
        refusal = _step_refusal(job, job_text)
        if refusal:
            return 1, "", refusal
        targets = opts.nodelist or job.nodes[:count or len(job.nodes)]
        if (count and count > len(job.nodes)) or any(n not in job.nodes for n in targets):
            return 1, "", (f"srun: error: Unable to create step for job {job_text}: Requested node configuration "
                           "is not available\n")
        job.next_step += 1
        return self._run_tasks(job, targets, command, opts.label)

    def _run_tasks(self, job: SimJob, targets: list[str], command: list[str],
                   label: bool) -> tuple[int, str, str]:
        """One task per node: ``hostname``, ``nvidia-smi``, or a program the nodes do not have."""
        program = command[0].rsplit("/", 1)[-1]
        out: list[str] = []
        err: list[str] = []
        rc = 0
        for task, node in enumerate(targets):
            prefix = f"{task}: " if label else ""
            if program == "hostname":
                lines, code = [node], 0
            elif program == "nvidia-smi":
                lines, code = self._nvidia_smi(job, node, command[1:])
            else:
                err.append(f"slurmstepd-{node}: error: execve(): {command[0]}: No such file or directory")
                lines, code = [], 2
            out += [prefix + line for line in lines]
            if code:
                err.append(f"srun: error: {node}: task {task}: Exited with exit code {code}")
                rc = max(rc, code)
        return rc, "".join(line + "\n" for line in out), "".join(line + "\n" for line in err)

    def _nvidia_smi(self, job: SimJob, node_name: str, args: list[str]) -> tuple[list[str], int]:
        node = self.nodes[node_name]
        query, fmt = None, ""
        for arg in args:
            if arg.startswith("--query-gpu="):
                query = [f.strip() for f in arg.split("=", 1)[1].split(",") if f.strip()]
            elif arg.startswith("--format="):
                fmt = arg.split("=", 1)[1]
        gpus = node.gpus if job.gpus_per_node else 0
        if not gpus:
            return ["No devices were found"], 6
        if query is None:
            return self._nvidia_smi_table(job, node), 0
        for name in query:
            if name not in _SMI_FIELDS:
                return [f'Field "{name}" is not a valid field to query.', ""], 2
        units = "nounits" not in fmt
        lines = []
        if "noheader" not in fmt:
            lines.append(", ".join(f"{n} [{_SMI_FIELDS[n]}]" if _SMI_FIELDS[n] and units else n for n in query))
        for index in range(gpus):
            values = self._gpu_values(job, node, index)
            cells = []
            for name in query:
                value = values[name]
                unit = _SMI_FIELDS[name]
                cells.append(f"{value} {unit}" if units and unit else str(value))
            lines.append(", ".join(cells))
        return lines, 0

    def _gpu_values(self, job: SimJob, node: SimNode, index: int) -> dict[str, Any]:
        pos = job.nodes.index(node.name) if node.name in job.nodes else 0
        rank = pos * node.gpus + index
        t = self.now() - (job.start or self.now())
        busy = False
        if job.server is not None:
            with contextlib.suppress(Exception):
                busy = job.server.engine.num_running > 0
        if job.gpu_model is not None and job.state == "RUNNING":
            s = job.gpu_model.sample(node.name, index, rank, t, busy)
        else:
            s = {"memory_used": 0, "utilization": 0, "power": 115.0, "temperature": 33}
        used = int(s["memory_used"])
        total = node.gpu_memory_mib
        return {
            "index": index, "name": node.gpu_name, "uuid": gpu_uuid(self.cluster_name, node.name, index),
            "pci.bus_id": f"00000000:{0x18 + index * 0x10:02X}:00.0", "memory.used": used, "memory.total": total,
            "memory.free": max(0, total - used - 615), "utilization.gpu": s["utilization"],
            "utilization.memory": min(100, int(s["utilization"] * 0.3)), "temperature.gpu": s["temperature"],
            "power.draw": f"{s['power']:.2f}", "power.limit": f"{node.gpu_power_limit_w:.2f}",
            "driver_version": "580.159.04", "count": node.gpus, "persistence_mode": "Enabled",
            "pstate": "P0", "serial": "1652024" + str(int(gpu_uuid(self.cluster_name, node.name, index)[4:12], 16)
                                                      % 10**6).zfill(6),
        }

    def _nvidia_smi_table(self, job: SimJob, node: SimNode) -> list[str]:
        bar = "+-----------------------------------------+------------------------+----------------------+"
        lines = [self.now_dt().strftime("%a %b %d %H:%M:%S %Y") + "       ",
                 "+-----------------------------------------------------------------------------------------+",
                 "| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |",
                 bar,
                 "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
                 "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
                 "|                                         |                        |               MIG M. |",
                 "|=========================================+========================+======================|"]
        for index in range(node.gpus):
            v = self._gpu_values(job, node, index)
            lines.append(f"| {index:>3}  {v['name']:<26}On  |   {v['pci.bus_id']} Off |                    0 |")
            usage = f"{v['memory.used']}MiB / {v['memory.total']}MiB"
            power = f"{float(v['power.draw']):.0f}W / {float(v['power.limit']):.0f}W"
            lines.append(f"| N/A   {v['temperature.gpu']:>2}C    P0 {power:>20} | {usage:>22} |"
                         f" {str(v['utilization.gpu']) + '%':>6}      Default |")
            lines.append("|                                         |                        |             Disabled |")
            lines.append(bar)
        return lines


@dataclass
class _SrunOptions:
    job_text: str | None = None        # --jobid
    label: bool = False                # -l: "task: " before each line
    count: int | None = None           # -N
    nodelist: list[str] | None = None  # -w


def _srun_options(args: list[str]) -> tuple[_SrunOptions, list[str]]:
    """The options srun is given (the ones the demo reads), and the command after them."""
    pairs, command = getopt.getopt(args, "N:n:w:lo:e:J:t:c:u", [
        "jobid=", "overlap", "nodes=", "ntasks=", "ntasks-per-node=", "nodelist=", "label", "exact",
        "output=", "error=", "job-name=", "time=", "cpus-per-task=", "unbuffered", "gpus=", "gpus-per-node=",
        "mem=", "overcommit", "quiet"])
    opts = _SrunOptions()
    for key, value in pairs:
        if key == "--jobid":
            opts.job_text = value
        elif key in ("-l", "--label"):
            opts.label = True
        elif key in ("-N", "--nodes"):
            opts.count = int(value) if value.isdigit() else None
        elif key in ("-w", "--nodelist"):
            opts.nodelist = expand_hostlist(value)
    return opts, command


def _step_refusal(job: SimJob | None, job_text: str) -> str:
    """srun's error when the job cannot run a step (unknown, pending or ended); "" when it can."""
    expired = f"srun: Check SLURM_JOB_ID environment variable. Expired or invalid job {job_text}\n"
    if job is None or (job.purged and job.state not in ACTIVE):
        return (f"srun: error: Unable to confirm allocation for job {job_text}: Invalid job id "
                f"specified\n{expired}")
    if job.state == "PENDING":
        return (f"srun: error: Unable to confirm allocation for job {job_text}: Job is pending "
                f"execution\n{expired}")
    if job.state != "RUNNING":
        return f"srun: error: Slurm job {job_text} has expired\n{expired}"
    return ""
