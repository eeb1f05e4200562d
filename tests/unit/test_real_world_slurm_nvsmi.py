"""The real SLURM outputs (sacct/slurmrestd JSON of Slurm 21.08 -> 25.05, `scontrol show job`) and real
nvidia-smi outputs in ../shared/real-world/ (read in place; provenance in its SOURCES.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
from _real_world import needs_real_world, real_file

from r1console.adapters.slurm_client import SlurmClient
from r1console.adapters.transport import RunResult
from r1console.core import nvidia_smi, slurm_json
from r1console.core.slurm_parse import parse_scontrol_jobs
from r1console.core.userconfig import ClusterSpec

pytestmark = needs_real_world


def read(rel: str) -> str:
    return real_file(rel).read_text()


# (file, release, job id, state, nodes, node count, time limit s, exit code, GPUs) — as each file says
SLURM_JSON = [
    ("s01-sacct-json-21.08.8-dbv0.0.37.json", (21, 8), "55978384", "REQUEUED", "", 1, 86400, "0:0", 1),
    ("s02-sacct-json-22.05.9-dbv0.0.38-multinode-failed.json", (22, 5), "20247445_100", "FAILED",
     "ng[30103,30203,30706-30707]", 4, 172800, "0:0", 16),
    ("s03-sacct-json-23.02.6.json", (23, 2), "4", "RUNNING", "mila02", 1, 432000, "0:0", 2),
    ("s04-sacct-json-23.11.5-v0.0.40.json", (23, 11), "4", "RUNNING", "mila02", 1, 432000, "0:0", 2),
    ("s05-slurmrestd-job-24.05.3-v0.0.41-gpu-multinode-running.json", (24, 5), "11", "RUNNING", "gpu[1-2]", 2, 60,
     "0:0", None),
    ("s06-slurmrestd-slurmdb-job-24.11.5-v0.0.42-timeout.json", (24, 11), "6357", "TIMEOUT", "cn1", 1, 60, "0:0",
     None),
    ("s07-slurmrestd-job-25.05.4-v0.0.43-pending.json", (25, 5), "4743", "PENDING", "", 2, 60, "0:0", None),
]


@pytest.mark.parametrize("name,release,job_id,state,nodes,count,limit,exit_code,gpus", SLURM_JSON)
def test_every_real_slurm_json_reads_right(name, release, job_id, state, nodes, count, limit, exit_code, gpus):
    text = read(f"slurm/{name}")
    assert slurm_json.document_release(text) == release
    [job] = slurm_json.parse_jobs_json(text)
    got = (job.job_id, job.state, job.nodes, job.node_count, job.time_limit, job.exit_code, job.gpus)
    assert got == (job_id, state, nodes, count, limit, exit_code, gpus)
    # JSON is trusted (used by `history`) from Slurm 23.02 on only: s02's FAILED 4-node job reports
    # exit status SUCCESS / return code 0 in 22.05's JSON
    assert slurm_json.json_trustworthy(release) is (release >= (23, 2))


def test_state_flag_list_and_reason_of_the_pending_and_timeout_jobs():
    [pending] = slurm_json.parse_jobs_json(read("slurm/s07-slurmrestd-job-25.05.4-v0.0.43-pending.json"))
    assert (pending.is_pending, pending.reason, pending.time_used) == (True, "BeginTime", 0)
    [timeout] = slurm_json.parse_jobs_json(read("slurm/s06-slurmrestd-slurmdb-job-24.11.5-v0.0.42-timeout.json"))
    assert timeout.is_finished and timeout.time_used == 65 and timeout.end_time == "2025-11-10T15:33:51Z"
    assert timeout.stdout == "/home/jbeck/slurm-6357.out"  # stdout_expanded (0.0.42+)


def test_scontrol_show_job_text_of_nine_jobs():
    jobs = parse_scontrol_jobs(read("slurm/s08-scontrol-show-job.txt"))
    assert [(j.job_id, j.state) for j in jobs][:4] == [("1", "RUNNING"), ("2398463_150", "COMPLETED"),
                                                       ("153291", "RUNNING"), ("134238037", "PENDING")]
    assert len(jobs) == 9 and jobs[0].batch_host == "node-63" and jobs[0].node_count == 3
    assert jobs[2].gpus == 4 and jobs[3].reason == "AssocGrpCpuLimit"


class _FakeTransport:
    """Answers sacct like a Slurm of the given version whose JSON is a real capture."""

    is_local = False

    def __init__(self, version: str, document: str) -> None:
        self.version, self.document, self.calls = version, document, []

    async def identity(self) -> tuple[str, str]:
        return "host", "me"

    async def run(self, argv, *, timeout=None, retry_on_drop=True) -> RunResult:
        self.calls.append(list(argv))
        if argv[:2] == ["sacct", "--version"]:
            out = f"slurm {self.version}\n"
        elif "--json" in argv:
            out = self.document
        else:
            out = "JobID\x1fJobName\n"  # a header only: no jobs by the -P path
        return RunResult(tuple(argv), 0, out, "", out.encode())


@pytest.mark.parametrize("version,uses_json", [("23.11.5", True), ("22.05.9", False)])
def test_history_uses_sacct_json_only_where_it_is_trustworthy(version, uses_json):
    doc = read("slurm/s04-sacct-json-23.11.5-v0.0.40.json")
    transport = _FakeTransport(version, doc)
    client = SlurmClient(transport, ClusterSpec(name="c", ssh_host="c"))
    jobs = asyncio.run(client.history(["4"]))
    assert any("--json" in c for c in transport.calls) is uses_json
    assert [j.job_id for j in jobs] == (["4"] if uses_json else [])
    if uses_json:
        assert jobs[0].source == "sacct-json" and jobs[0].state == "RUNNING"


# (file, GPUs, name, memory used MiB of GPU 0, memory total MiB of GPU 0)
NVSMI = [
    ("n01-8xH200-idle-table.txt", 8, "NVIDIA H200", 0.0, 143771.0),
    ("n02-1xA100-40GB-computecanada-table.txt", 1, "NVIDIA A100-SXM4-40GB", 1.0, 40960.0),
    ("n03-1xL40S-with-process-table.txt", 1, "NVIDIA L40S", 803.0, 46068.0),
    ("n04-rtx4090-query-csv-loop.csv", 1, "NVIDIA GeForce RTX 4090", 17957.0, None),  # the last of 20 samples
]


@pytest.mark.parametrize("name,count,gpu,used,total", NVSMI)
def test_every_real_nvidia_smi_output_reads_right(name, count, gpu, used, total):
    gpus = nvidia_smi.parse_any(read(f"nvsmi/{name}"), "node1")
    assert [g.index for g in gpus] == list(range(count))
    assert (gpus[0].name, gpus[0].memory_used_mib, gpus[0].memory_total_mib) == (gpu, used, total)


def test_a_wrapped_nvidia_smi_printing_its_table_under_srun_labels():
    table = read("nvsmi/n03-1xL40S-with-process-table.txt")
    labelled = "\n".join(f"0: {line}" for line in table.splitlines())
    [node] = nvidia_smi.parse_labelled(labelled, ["gpu7"])
    assert node.node == "gpu7" and [(g.index, g.power_w, g.power_limit_w, g.temperature_c) for g in node.gpus] == \
        [(0, 104.0, 325.0, 39.0)]


def test_json_documents_stay_parse_errors_when_broken():
    doc = json.loads(read("slurm/s04-sacct-json-23.11.5-v0.0.40.json"))
    doc["jobs"][0]["state"] = "RUNNING"  # not an object
    with pytest.raises(slurm_json.SlurmParseError, match="'state' is not an object"):
        slurm_json.parse_jobs_json(json.dumps(doc))
