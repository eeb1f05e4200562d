"""``scontrol show job`` (multi-line and ``-o`` one-liner)."""

from __future__ import annotations

from r1console.core.slurm_parse import expand_hostlist
from r1console.demo.slurm.common import INVALID_JOB_ID, _hms, _limit_hms, _mem_text, _ts
from r1console.demo.slurm.model import SimJob


class ScontrolCommand:
    """The ``scontrol`` part of :class:`~r1console.demo.sim_cluster.SimCluster`
    (a mixin over the cluster's state)."""

    async def _scontrol(self, args: list[str]) -> tuple[int, str, str]:
        oneliner = False
        words = []
        for arg in args:
            if arg in ("-o", "--oneliner"):
                oneliner = True
            elif arg in ("-d", "--details", "-a", "--all"):
                continue
            elif arg.startswith("-"):
                return 1, "", f"scontrol: unrecognized option '{arg}'\nTry \"scontrol --help\" for more information\n"
            else:
                words.append(arg)
        if len(words) >= 2 and words[0] == "show" and words[1] in ("hostnames", "hostname"):
            expr = words[2] if len(words) > 2 else ""
            return 0, "".join(h + "\n" for h in expand_hostlist(expr)), ""
        if len(words) >= 2 and words[0] == "show" and words[1] in ("job", "jobs"):
            now = self.now()
            if len(words) > 2:
                job = self.job(words[2])
                if job is None or not self.visible(job):
                    return 1, "", INVALID_JOB_ID
                jobs = [job]
            else:
                jobs = sorted((j for j in self.jobs.values() if self.visible(j)), key=lambda j: j.job_id)
                if not jobs:
                    return 0, "No jobs in the system\n", ""
            text = "".join(self._scontrol_text(j, now, oneliner) for j in jobs)
            return 0, text, ""
        return 1, "", f"invalid entity:{words[1] if len(words) > 1 else ''} for keyword:show\n"

    def _scontrol_text(self, job: SimJob, now: float, oneliner: bool) -> str:
        pending = job.state == "PENDING"
        limit = job.time_limit_s
        if pending:
            start, end = "Unknown", "Unknown"
        else:
            start = _ts(job.start)
            if job.end is not None:
                end = _ts(job.end)
            else:
                end = _ts(job.start + limit) if job.start is not None and limit is not None else "Unknown"
        nodes = job.nodelist
        num_nodes = f"{job.num_nodes}-{job.num_nodes}" if pending else str(job.num_nodes)
        rows: list[list[str]] = [
            [f"JobId={job.job_id}", f"JobName={job.name}"],
            [f"UserId={job.user}({job.uid})", f"GroupId={job.user}({job.uid})", "MCS_label=N/A"],
            [f"Priority={4294901759 - job.job_id % 1000}", "Nice=0", "Account=(null)", "QOS=normal"],
            [f"JobState={job.state}", f"Reason={job.reason or 'None'}", "Dependency=(null)"],
            ["Requeue=1", "Restarts=0", "BatchFlag=1", "Reboot=0", f"ExitCode={job.exit_code}"],
            [f"RunTime={_hms(job.elapsed(now))}", f"TimeLimit={_limit_hms(limit)}", "TimeMin=N/A"],
            [f"SubmitTime={_ts(job.submit)}", f"EligibleTime={_ts(job.submit)}"],
            [f"AccrueTime={_ts(job.submit)}"],
            [f"StartTime={start}", f"EndTime={end}", "Deadline=N/A"],
            ["SuspendTime=None", "SecsPreSuspend=0", f"LastSchedEval={_ts(job.start or job.submit)}",
             "Scheduler=Main"],
            [f"Partition={job.partition}", "AllocNode:Sid=login01:4242"],
            ["ReqNodeList=(null)", "ExcNodeList=(null)"],
            [f"NodeList={nodes}"],
        ]
        if job.nodes and not pending:
            rows.append([f"BatchHost={job.batch_host}"])
        rows += [
            [f"NumNodes={num_nodes}", f"NumCPUs={job.cpus}", f"NumTasks={job.num_nodes * job.ntasks_per_node}",
             f"CPUs/Task={job.cpus_per_task}", "ReqB:S:C:T=0:0:*:*"],
            [f"TRES={job.tres(alloc=not pending)}"],
            ["Socks/Node=*", f"NtasksPerN:B:S:C={job.ntasks_per_node}:0:*:*", "CoreSpec=*"],
            [f"MinCPUsNode={job.cpus_per_task}", f"MinMemoryNode={_mem_text(job.mem_mb)}", "MinTmpDiskNode=0"],
            [f"Features={job.features or '(null)'}", "DelayBoot=00:00:00"],
            [f"OverSubscribe={'NO' if job.exclusive else 'OK'}", "Contiguous=0", "Licenses=(null)",
             "Network=(null)"],
            [f"Command={job.command}"],
            [f"WorkDir={job.workdir}"],
            [f"StdErr={job.pattern_path(job.stderr_pattern, expand_node=False)}"],
            ["StdIn=/dev/null"],
            [f"StdOut={job.pattern_path(job.stdout_pattern, expand_node=False)}"],
            ["Power="],
        ]
        if job.gpus_per_node:
            rows.append([f"TresPerNode=gres/gpu:{job.gpus_per_node}"])
        if oneliner:
            return " ".join(" ".join(r) for r in rows) + " \n"
        first, *rest = rows
        return " ".join(first) + "\n" + "".join("   " + " ".join(r) + "\n" for r in rest) + "   \n\n"
