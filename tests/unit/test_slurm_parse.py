"""SLURM output parsers against verbatim SLURM 22.05 captures (tests/data/slurm/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1console.core.slurm_parse import (
    SQUEUE_FIELDS,
    SQUEUE_FORMAT,
    SQUEUE_SEP,
    JobInfo,
    SlurmParseError,
    classify_srun_error,
    expand_hostlist,
    format_duration,
    is_accounting_disabled,
    is_invalid_job_id,
    normalize_state,
    parse_duration,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_jobs,
    parse_scontrol_record,
    parse_squeue_format,
    parse_squeue_json,
    squeue_json_version,
    tres_gpus,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"


def capture(name: str) -> tuple[str, str, int]:
    """(command, output, rc) of a lab capture: '$ cmd' line, output, '[rc=N]' line."""
    text = (DATA / name).read_text()
    first, _, rest = text.partition("\n")
    body, _, rc = rest.rpartition("[rc=")
    return first.removeprefix("$ "), body, int(rc.split("]")[0])


# ---- squeue --json --------------------------------------------------------------------------------


def test_squeue_json_2205_shape():
    _, out, rc = capture("08_squeue_json.txt")
    assert rc == 0 and squeue_json_version(out) == "22.05.8"
    jobs = {j.job_id: j for j in parse_squeue_json(out, now=1795866800)}
    assert sorted(jobs, key=int) == ["1", "2", "3", "4", "5", "6", "7"]
    running = jobs["5"]
    assert running.state == "RUNNING" and running.is_running and not running.is_finished
    assert running.batch_host == "vm" and running.nodes == "vm" and running.node_count == 1
    assert running.workdir == "/tmp/slurmlab/jobs"
    assert running.stdout == "/tmp/slurmlab/jobs/job.%N.%j.out"     # raw pattern: %N and %j unexpanded
    assert running.stdout_path() == "/tmp/slurmlab/jobs/job.vm.5.out"  # we expand both
    assert running.time_limit is None                                # UNLIMITED (null)
    assert running.time_used == 1795866800 - 1795866785
    assert running.end_time is None                                  # an expected end, not an end
    failed = jobs["3"]
    assert failed.state == "FAILED" and failed.reason == "BadConstraints" and failed.exit_code == "0:1"
    assert failed.batch_host == "" and failed.is_finished
    pending = jobs["7"]
    assert pending.is_pending and pending.reason == "Priority" and pending.start_time is None
    assert pending.stdout_path() is None                             # no batch host yet: no %N
    assert jobs["6"].reason == ""                                    # "None" means no reason


def test_squeue_json_2302_shape_gives_the_same_jobs():
    _, old_text, _ = capture("08_squeue_json.txt")
    new_text = (DATA / "squeue_json_v0.0.40_shape.json").read_text()
    old = {j.job_id: j for j in parse_squeue_json(old_text, now=1795866800)}
    new = {j.job_id: j for j in parse_squeue_json(new_text, now=1795866800)}
    assert old.keys() == new.keys()
    for job_id, job in old.items():
        other = new[job_id]
        for name in ("state", "reason", "nodes", "node_count", "batch_host", "partition", "time_used",
                     "time_limit", "start_time", "end_time", "submit_time", "workdir", "stdout", "exit_code"):
            assert getattr(other, name) == getattr(job, name), (job_id, name)
    assert new["7"].state == "PENDING" and new["7"].state_flags == ("REQUEUED",)


def test_squeue_json_multinode_fields():
    data = json.loads(capture("08_squeue_json.txt")[1])
    job = dict(data["jobs"][4], nodes="node[1-2]", batch_host="node1", node_count=2)
    parsed = parse_squeue_json(json.dumps({"jobs": [job]}), now=1795866800)[0]
    assert parsed.node_list == ["node1", "node2"] and parsed.stdout_path().endswith("/job.node1.5.out")


def test_squeue_json_garbage_is_a_clear_error():
    with pytest.raises(SlurmParseError, match="did not print JSON"):
        parse_squeue_json("squeue: error: Invalid job id specified\n")
    with pytest.raises(SlurmParseError, match="without a 'jobs' list"):
        parse_squeue_json('{"meta": {}}')
    with pytest.raises(SlurmParseError, match="reported errors: boom"):
        parse_squeue_json('{"jobs": [], "errors": [{"description": "boom"}]}')


# ---- squeue -o ------------------------------------------------------------------------------------


def test_squeue_format_has_the_name_last_and_no_shell_specials():
    assert SQUEUE_FIELDS[-1][0] == "name"
    assert SQUEUE_FORMAT.count(SQUEUE_SEP) == len(SQUEUE_FIELDS) - 1
    assert all(ch not in SQUEUE_FORMAT for ch in "'\"$`\\\n")


def test_squeue_format_name_with_separator_and_metacharacters():
    # the job name is free text: whatever it contains stays in the last field
    cells = ["12", "RUNNING", "None", "node1", "2", "1:02", "1:00:00", "2026-11-28T12:39:51",
             "2026-11-28T12:39:49", "debug", "r1ctest", "node[1-2]", "/home/r1ctest/w d",
             f"x;touch(p)&|{SQUEUE_SEP}y"]
    [job] = parse_squeue_format(SQUEUE_SEP.join(cells) + "\n")
    assert job.name == f"x;touch(p)&|{SQUEUE_SEP}y" and job.workdir == "/home/r1ctest/w d"
    assert job.time_used == 62 and job.time_limit == 3600 and job.node_list == ["node1", "node2"]
    with pytest.raises(SlurmParseError, match="3 of 14 fields"):
        parse_squeue_format(SQUEUE_SEP.join(cells[:3]) + "\n")


def test_squeue_format_pending_job_has_no_nodes():
    cells = ["13", "PENDING", "Resources", "n/a", "1", "0:00", "UNLIMITED", "N/A", "2026-11-28T12:40:00",
             "debug", "r1ctest", "", "/w", "job"]
    [job] = parse_squeue_format(SQUEUE_SEP.join(cells))
    assert job.is_pending and job.batch_host == "" and job.nodes == "" and job.start_time is None
    assert job.reason == "Resources" and job.time_limit is None


# ---- scontrol -------------------------------------------------------------------------------------


def test_scontrol_oneliner_running():
    _, out, rc = capture("17_scontrol_show_job_oneliner.txt")
    [job] = parse_scontrol_jobs(out)
    assert (job.job_id, job.name, job.state, job.user) == ("5", "job.sh", "RUNNING", "root")
    assert job.batch_host == "vm" and job.nodes == "vm" and job.node_count == 1
    assert job.workdir == "/tmp/slurmlab/jobs" and job.stdout == "/tmp/slurmlab/jobs/job.%N.5.out"
    assert job.stdout_path() == "/tmp/slurmlab/jobs/job.vm.5.out"
    assert job.stderr_path() == "/tmp/slurmlab/jobs/job.vm.5.err"
    assert job.time_used == 12 and job.time_limit is None and job.start_time == "2026-11-28T11:53:05"
    assert job.end_time is None and job.reason == ""


def test_scontrol_multiline_forms_parse_the_same():
    one = parse_scontrol_jobs(capture("17_scontrol_show_job_oneliner.txt")[1])[0]
    multi = parse_scontrol_jobs(capture("15_scontrol_show_job_running.txt")[1])[0]
    assert one == multi


def test_scontrol_pending_completed_timeout_and_multinode():
    pending = parse_scontrol_jobs(capture("16_scontrol_show_job_pending.txt")[1])[0]
    assert pending.is_pending and pending.reason == "Resources" and pending.nodes == ""
    assert pending.batch_host == "" and pending.start_time is None and pending.stdout_path() is None
    done = parse_scontrol_jobs(capture("25_scontrol_show_job_completed.txt")[1])[0]
    assert done.state == "COMPLETED" and done.end_time == "2026-11-28T11:53:25" and done.time_used == 20
    timeout = parse_scontrol_jobs(capture("83_timeout_job_scontrol.txt")[1])[0]
    assert timeout.state == "TIMEOUT" and timeout.reason == "TimeLimit" and timeout.time_limit == 60
    assert timeout.exit_code == "0:15" and timeout.time_used == 87
    text = capture("mn/2nodes_04_scontrol_show_job.txt")[1].split("\n\n")[0]
    multi = parse_scontrol_jobs(text)[0]
    assert multi.node_list == ["node1", "node2"] and multi.batch_host == "node1" and multi.node_count == 2
    assert multi.stdout_path() == "/tmp/mnlab/work/job.node1.1.out"


def test_scontrol_free_text_values_keep_their_spaces():
    line = capture("17_scontrol_show_job_oneliner.txt")[1].strip()
    line = line.replace("JobName=job.sh", "JobName=my job Nice=x")  # a name that looks like a key
    line = line.replace("WorkDir=/tmp/slurmlab/jobs", "WorkDir=/tmp/a dir/Power=x y")
    line = line.replace("Command=/tmp/slurmlab/jobs/job.sh", "Command=/tmp/a dir/job.sh --flag=1 two")
    rec = parse_scontrol_record(line)
    assert rec["WorkDir"] == "/tmp/a dir/Power=x y"
    assert rec["Command"] == "/tmp/a dir/job.sh --flag=1 two"
    assert rec["TRES"] == "cpu=1,node=1,billing=1" and rec["AllocNode:Sid"] == "localhost:2013"
    assert rec["Power"] == "" and rec["JobState"] == "RUNNING"
    # a known key inside a free-text value is indistinguishable from the real one: documented limit
    assert rec["JobName"] == "my job"


# ---- sacct ----------------------------------------------------------------------------------------


def test_sacct_slurmdbd_drops_steps_and_splits_cancelled_by():
    jobs = parse_sacct(capture("71_sacct_dbd_parsable2.txt")[1])
    assert [(j.job_id, j.state, j.exit_code) for j in jobs] == [
        ("24", "COMPLETED", "0:0"), ("25", "FAILED", "3:0"), ("26", "CANCELLED", "0:0"), ("27", "CANCELLED", "0:0")]
    assert jobs[2].reason == "by 0" and jobs[0].partition == "debug"


def test_sacct_format_and_reason_columns():
    with pytest.raises(SlurmParseError, match="no JobID header"):  # captured with --noheader
        parse_sacct(capture("72_sacct_dbd_format.txt")[1])
    jobs = parse_sacct(capture("74_sacct_dbd_X.txt")[1])
    assert [(j.job_id, j.state, j.reason) for j in jobs] == [
        ("24", "COMPLETED", ""), ("25", "FAILED", ""), ("26", "CANCELLED", "by 0"), ("27", "CANCELLED", "JobHeldUser")]
    timeout = parse_sacct(capture("84_timeout_job_sacct.txt")[1])
    assert [(j.job_id, j.state, j.time_used, j.time_limit) for j in timeout] == [("28", "TIMEOUT", 87, 60)]


def test_sacct_jobcomp_and_empty():
    jobs = parse_sacct(capture("30_sacct_c_format.txt")[1], source="sacct-c")
    assert [(j.job_id, j.state, j.start_time, j.end_time, j.nodes) for j in jobs] == [
        ("6", "CANCELLED", "2026-11-28T11:53:08", "2026-11-28T11:53:17", "vm"),
        ("7", "CANCELLED", "2026-11-28T11:53:17", "2026-11-28T11:53:18", "vm"),
        ("5", "COMPLETED", "2026-11-28T11:53:05", "2026-11-28T11:53:25", "vm")]
    assert all(j.source == "sacct-c" for j in jobs)
    assert parse_sacct(capture("76_sacct_dbd_nonexistent.txt")[1]) == []
    running = parse_sacct(capture("70_sacct_dbd_running.txt")[1])
    assert [(j.job_id, j.state, j.end_time) for j in running] == [("24", "RUNNING", None)]


def test_sacct_multinode_jobcomp_nodelist():
    text = (DATA / "mn" / "2nodes_15_more_checks.txt").read_text()
    command = "$ sacct -c -P -o JobID,JobName,State,NodeList,ExitCode | tail -5\n"
    rows = text[text.index(command) + len(command):]  # `| tail -5` cut the header off
    jobs = parse_sacct("JobID|JobName|State|NodeList|ExitCode\n" + rows)
    assert ("4", "COMPLETED", "node[1-2]") in [(j.job_id, j.state, j.nodes) for j in jobs]
    assert ("5", "FAILED", "") in [(j.job_id, j.state, j.nodes) for j in jobs]  # NodeList (null)


# ---- sbatch / errors ------------------------------------------------------------------------------


def test_sbatch_parsable():
    cmd, out, rc = capture("02_sbatch_parsable.txt")
    assert "--parsable" in cmd and parse_sbatch_parsable(out) == ("6", None)
    assert parse_sbatch_parsable("1234;cluster2\n") == ("1234", "cluster2")
    with pytest.raises(SlurmParseError, match="no job id"):
        parse_sbatch_parsable(capture("41_sbatch_bad_partition.txt")[1])


def test_error_classifiers_on_captures():
    assert is_invalid_job_id(capture("44_scontrol_show_nonexistent.txt")[1])
    assert is_invalid_job_id(capture("45_squeue_nonexistent.txt")[1])
    assert is_accounting_disabled(capture("27_sacct_parsable2_accounting_none.txt")[1])
    assert classify_srun_error(capture("91_srun_overlap_pending_job.txt")[1]).kind == "pending"
    assert classify_srun_error(capture("93_srun_overlap_completed_job.txt")[1]).kind == "ended"
    assert classify_srun_error(capture("94_srun_overlap_nonexistent_job.txt")[1]).kind == "unknown_job"
    missing = classify_srun_error(capture("12_srun_overlap_nvidia_smi_missing.txt")[1])
    assert missing.kind == "missing_command" and "vm" in missing.message


# ---- small values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text,seconds", [
    ("0:00", 0), ("1:27", 87), ("00:01:27", 87), ("1-02:03:04", 93784), ("3-00:00:00", 259200),
    ("2-12", 216000), ("UNLIMITED", None), ("INVALID", None), ("", None), (None, None), ("5", 300),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_format_duration_roundtrip():
    for seconds in (0, 59, 87, 3600, 93784):
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("expr,hosts", [
    ("vm", ["vm"]), ("node[1-2]", ["node1", "node2"]), ("node[01-03,7]", ["node01", "node02", "node03", "node7"]),
    ("a[1-2],b3", ["a1", "a2", "b3"]), ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]), ("", []), ("(null)", []),
])
def test_expand_hostlist(expr, hosts):
    assert expand_hostlist(expr) == hosts


def test_normalize_state():
    assert normalize_state("CANCELLED by 0") == ("CANCELLED", "by 0")
    assert normalize_state("CANCELLED+") == ("CANCELLED", "")
    assert normalize_state("PD") == ("PENDING", "")


def test_pattern_expansion():
    job = JobInfo(job_id="42", name="r1", user="u", batch_host="node1.cluster", workdir="/w")
    assert job.expand_pattern("job.%N.%j.out") == "/w/job.node1.42.out"
    assert job.expand_pattern("/abs/%x-%u-%5j-%%.log") == "/abs/r1-u-00042-%.log"


# ---- r1console's own argv on the test cluster (tests/data/slurm/live) -----------------------------

ODD_NAME = "r1c;touch|(x)&!*"


def test_live_squeue_format_running_held_and_cancelled():
    cmd, out, rc = capture("live/squeue_o_running_and_held.txt")
    jobs = {j.job_id: j for j in parse_squeue_format(out)}
    run, held = jobs["9"], jobs["10"]
    assert (run.state, run.name, run.nodes, run.batch_host, run.node_count) == ("RUNNING", ODD_NAME, "node[1-2]", "node1", 2)
    assert run.workdir.endswith("/r1c-dev/w d") and run.time_limit == 300 and run.user == "r1ctest"
    assert (held.state, held.reason, held.batch_host, held.nodes, held.start_time) == ("PENDING", "JobHeldUser", "", "", None)
    ended = {j.job_id: j for j in parse_squeue_format(capture("live/squeue_o_cancelled.txt")[1])}
    assert ended["9"].state == ended["10"].state == "CANCELLED" and ended["9"].is_finished


def test_live_scontrol_odd_name_and_workdir_with_a_space():
    [job] = parse_scontrol_jobs(capture("live/scontrol_o_running_odd_name_and_workdir.txt")[1])
    assert job.name == ODD_NAME and job.workdir.endswith("/r1c-dev/w d") and job.batch_host == "node1"
    assert job.stdout_path() == f"{job.workdir}/job.node1.9.out"
    assert job.node_list == ["node1", "node2"] and job.user == "r1ctest"
    [held] = parse_scontrol_jobs(capture("live/scontrol_o_held.txt")[1])
    assert held.is_pending and held.reason == "JobHeldUser" and held.stdout_path() is None


def test_scontrol_tres_gives_the_jobs_gpus():
    """`gpus` refuses a job SLURM gave no GPUs (nvidia-smi inside it would show other jobs' GPUs)."""
    [gpu_job] = parse_scontrol_jobs(capture("live/scontrol_o_running_odd_name_and_workdir.txt")[1])
    assert gpu_job.gpus == 8  # TRES=cpu=2,node=2,billing=2,gres/gpu=8
    [cpu_job] = parse_scontrol_jobs(capture("17_scontrol_show_job_oneliner.txt")[1])
    assert cpu_job.gpus == 0  # TRES=cpu=1,node=1,billing=1
    assert parse_scontrol_jobs(capture("15_scontrol_show_job_running.txt")[1])[0].gpus == 0
    assert parse_squeue_format(capture("live/squeue_o_cancelled.txt")[1])[0].gpus is None  # not reported
    assert tres_gpus("cpu=8,gres/gpu=8,gres/gpu:h200=8") == 8  # the total, not total + typed
    assert tres_gpus("cpu=8,gres/gpu:a100=2,gres/gpu:h100=4") == 6
    assert tres_gpus(None) is None and tres_gpus("(null)") is None and tres_gpus("cpu=1") == 0


def test_live_sacct_needs_its_own_delimiter():
    jobs = {j.job_id: j for j in parse_sacct(capture("live/sacct_X_P_fields.txt")[1])}
    assert jobs["9"].name == ODD_NAME and jobs["9"].state == "CANCELLED" and jobs["9"].reason == "by 1001"
    assert jobs["9"].workdir.endswith("/w d") and jobs["10"].reason == "JobHeldUser" and jobs["10"].nodes == ""
    default = capture("live/sacct_X_P_default_delimiter.txt")[1].splitlines()
    assert default[1].count("|") > default[0].count("|")  # the name's '|' shifts every later column
    assert "Permission denied" in capture("live/sacct_c_P_fields.txt")[1]


def test_live_sbatch_parsable():
    assert parse_sbatch_parsable(capture("live/sbatch_parsable.txt")[1])[0].isdigit()


def test_gpu_job_without_gres_in_tres_is_not_refused():
    """Lab capture 33: TresPerNode=gres:gpu:4 but TRES=cpu=1,node=1,billing=1 (AccountingStorageTRES
    without gres/gpu): the job has GPUs, the count is just not reported."""
    from r1console.core.slurm_parse import job_gpus

    assert job_gpus({"TRES": "cpu=1,node=1,billing=1", "TresPerNode": "gres:gpu:4"}) is None
    assert job_gpus({"TRES": "cpu=8,node=2,billing=8,gres/gpu=8"}) == 8
    assert job_gpus({"TRES": "cpu=2,node=1,billing=2"}) == 0  # a CPU-only job: refused with a clear message
