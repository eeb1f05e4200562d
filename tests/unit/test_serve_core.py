"""Headless decisions behind `r1console serve`: replica choice, relay, idle stop, usage, /metrics merge."""

from __future__ import annotations

import pytest

from r1console.core.idle import OK, STOP, WARN, IdleWatch
from r1console.core.metrics_merge import merge_metrics
from r1console.core.prometheus import parse_metrics
from r1console.core.relay import (
    CANCEL,
    GIVE_UP,
    PROMOTE,
    RESUBMIT,
    SUBMIT,
    JobView,
    RelayChain,
    RelayPolicy,
    parse_span,
)
from r1console.core.replicas import DOWN, DRAINING, Replica, ReplicaSet
from r1console.core.usage import JobUsage, TokenLedger, gpu_hours

# ---- replicas -------------------------------------------------------------------------------

def make_set(*names: str) -> ReplicaSet:
    rs = ReplicaSet()
    for n in names:
        rs.add(Replica(n, f"http://127.0.0.1/{n}"))
    return rs


def test_least_outstanding_then_least_recent():
    rs = make_set("a", "b", "c")
    picks = []
    for _ in range(3):
        rep = rs.choose()
        rs.begin(rep)
        picks.append(rep.name)
    assert sorted(picks) == ["a", "b", "c"]          # one each while all are equally busy
    rs.end(rs.get("b"), ok=True)
    assert rs.choose().name == "b"                    # the one with nothing in flight
    idle = make_set("x", "y")
    assert [idle.choose().name for _ in range(4)] == ["x", "y", "x", "y"]   # idle replicas alternate


def test_down_and_draining_replicas_take_nothing():
    rs = make_set("a", "b")
    rs.mark_down("a")
    assert rs.choose().name == "b"
    rs.drain("b")
    assert rs.choose() is None
    assert rs.choose(exclude={"b"}) is None
    rs.mark_up("a")
    assert rs.choose(exclude={"b"}).name == "a"
    rep = rs.get("b")
    assert rep.state == DRAINING and rs.drained("b")
    rs.begin(rep)
    assert not rs.drained("b")
    rs.mark_up("b")                                   # a draining replica is not revived by a probe
    assert rs.get("b").state == DRAINING


def test_readding_keeps_counters():
    rs = make_set("a")
    rs.begin(rs.get("a"))
    rs.add(Replica("a", "http://new", state=DOWN))
    assert rs.get("a").outstanding == 1 and rs.get("a").url == "http://new"


# ---- spans ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("90s", 90),
                                          ("1d", 86400), (120, 120), ("0.5h", 1800)])
def test_parse_span(text, seconds):
    assert parse_span(text) == seconds


@pytest.mark.parametrize("bad", ["", "45", "m", "45x", "-5m", True, -1])
def test_parse_span_rejects(bad):
    with pytest.raises(ValueError):
        parse_span(bad, "lead_time")


# ---- relay ----------------------------------------------------------------------------------

POLICY = RelayPolicy(lead_time_s=2700, max_restarts=2, restart_backoff_s=60)


def run(state="RUNNING", ready=True, left=None, out=0):
    return lambda job: JobView(job, state, ready=ready, remaining_s=left, outstanding=out)


def test_relay_full_handover():
    chain = RelayChain(POLICY, current="1")
    assert chain.step(0, {"1": run(left=3 * 3600)("1")}) == []
    actions = chain.step(10, {"1": run(left=2700)("1")})
    assert [a.kind for a in actions] == [SUBMIT]
    assert chain.step(11, {"1": run(left=2690)("1")}) == []        # waiting for the submit result
    chain.submitted("2", 12)
    assert chain.successor == "2"
    # the successor is loading: nothing happens
    assert chain.step(20, {"1": run(left=2600)("1"), "2": run(ready=False)("2")}) == []
    actions = chain.step(30, {"1": run(left=2500, out=3)("1"), "2": run(left=86400)("2")})
    assert [a.kind for a in actions] == [PROMOTE] and chain.current == "2" and chain.draining == ["1"]
    # still 3 in flight on the old job: no cancel yet
    assert chain.step(31, {"1": run(out=3)("1"), "2": run(left=86400)("2")}) == []
    actions = chain.step(40, {"1": run(out=0)("1"), "2": run(left=86400)("2")})
    assert [(a.kind, a.job_id) for a in actions] == [(CANCEL, "1")]
    chain.cancelled("1", 41)
    assert chain.jobs() == ["2"]


def test_relay_waits_for_a_ready_job_before_submitting_a_successor():
    chain = RelayChain(POLICY, current="1")
    assert chain.step(0, {"1": run(ready=False, left=100)("1")}) == []


def test_failed_job_is_resubmitted_with_backoff_then_gives_up():
    chain = RelayChain(POLICY, current="1")
    assert chain.step(0, {"1": run(state="FAILED")("1")}) == []     # backoff 60 s first
    assert chain.restart_due == 60
    assert chain.step(59, {}) == []
    assert [a.kind for a in chain.step(60, {})] == [RESUBMIT]
    chain.submitted("2", 61)
    assert chain.current == "2" and chain.restarts == 1
    assert chain.step(62, {"2": run(state="NODE_FAIL")("2")}) == []
    assert chain.restart_due == 62 + 120                             # doubled
    assert [a.kind for a in chain.step(182, {})] == [RESUBMIT]
    chain.submitted("3", 183)
    actions = chain.step(184, {"3": run(state="FAILED")("3")})
    assert [a.kind for a in actions] == [GIVE_UP] and chain.gave_up
    assert chain.step(999, {}) == []


def test_successor_failing_before_ready_is_resubmitted():
    chain = RelayChain(POLICY, current="1")
    chain.step(0, {"1": run(left=100)("1")})
    chain.submitted("2", 1)
    assert chain.step(2, {"1": run(left=98)("1"), "2": run(state="FAILED", ready=False)("2")}) == []
    assert chain.successor is None and chain.current == "1"
    assert [a.kind for a in chain.step(62, {"1": run(left=40)("1")})] == [RESUBMIT]
    chain.submitted("3", 63)
    assert chain.successor == "3"


def test_current_timing_out_while_successor_loads_hands_over_when_ready():
    chain = RelayChain(POLICY, current="1", successor="2")
    assert chain.step(0, {"1": run(state="TIMEOUT")("1"), "2": run(ready=False)("2")}) == []
    assert chain.current == "2" and chain.successor is None
    assert chain.step(1, {"2": run(left=9000)("2")}) == []


# ---- idle -----------------------------------------------------------------------------------

def test_idle_warns_then_stops_and_use_resets():
    watch = IdleWatch(idle_stop_s=7200, warn_before_s=600)
    assert watch.observe(0, 5) == OK                # the clock starts at the first reading
    assert watch.observe(6000, 5) == OK
    assert watch.observe(6600, 5) == WARN
    assert watch.observe(6700, 5) == OK             # warned once
    assert watch.observe(6800, 6) == OK             # a request: the clock restarts
    assert watch.idle_for(6800) == 0
    assert watch.observe(6800 + 6600, 6) == WARN
    assert watch.observe(6800 + 7200, 6) == STOP
    assert watch.observe(99999, 6) == OK            # stops once


def test_idle_in_flight_counts_as_use():
    watch = IdleWatch(idle_stop_s=100)
    watch.observe(0, 0)
    assert watch.observe(150, 0, in_flight=1) == OK
    assert watch.observe(249, 0) == WARN            # default warning: a tenth before
    assert watch.observe(250, 0) == STOP


# ---- usage ----------------------------------------------------------------------------------

def test_gpu_hours_and_token_ledger():
    assert gpu_hours([JobUsage("1", 8, 3600), JobUsage("2", 8, 1800)]) == 12.0
    ledger = TokenLedger()
    ledger.observe("1", 100, 10)
    ledger.observe("1", 250, 30)
    ledger.observe("1", 40, 5)            # the engine restarted: the counter began again
    ledger.observe("2", 60)
    assert ledger.tokens_served == 250 + 40 + 60
    again = TokenLedger.from_dict(ledger.to_dict())
    again.observe("1", 50, 6)
    assert again.generation["1"] == 300


# ---- metrics merge --------------------------------------------------------------------------

A = """# HELP vllm:num_requests_running Running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="r1"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="r1"} 0.5
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="r1"} 1000.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="r1"} 2.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="r1"} 5.0
vllm:e2e_request_latency_seconds_sum{model_name="r1"} 9.5
vllm:e2e_request_latency_seconds_count{model_name="r1"} 5.0
"""
B = A.replace(" 3.0", " 1.0").replace(" 0.5", " 0.25").replace(" 1000.0", " 500.0").replace(" 5.0", " 7.0")


def test_merge_sums_counters_and_averages_fractions():
    merged = parse_metrics(merge_metrics([A, B], 'r1console_serve_replicas_ready 2\n'))
    assert merged.value("vllm:num_requests_running") == 4
    assert merged.value("vllm:kv_cache_usage_perc") == pytest.approx(0.375)
    assert merged.value("vllm:generation_tokens_total") == 1500
    hist = merged.histogram("vllm:e2e_request_latency_seconds")
    assert hist.count == 12 and dict(hist.buckets)[1.0] == 4
    assert merged.value("r1console_serve_replicas_ready") == 2
    text = merge_metrics([A, B])
    assert text.count("# TYPE vllm:e2e_request_latency_seconds histogram") == 1
    assert merge_metrics([]) == ""


# ---- the jobs screen groups a deployment's jobs ----------------------------------------------

def test_jobs_screen_groups_a_deployments_jobs(tmp_path, monkeypatch):
    from r1console.adapters.deployment_groups import Group, save
    from r1console.core.slurm_parse import JobInfo
    from r1console.tui.screens.jobs import group_jobs

    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path))
    jobs = [JobInfo(j, time_used=1800 if j == "13" else 0) for j in ("10", "11", "12", "13")]
    assert group_jobs(jobs) == (jobs, {})
    save(Group(name="team", cluster="c", profile="p", jobs=["10", "13"], tokens={"generation": {"10": 42}},
               gpus_per_job=8,
               relay={"lead_time_s": 60.0, "max_restarts": 1, "restart_backoff_s": 1.0}))
    order, named = group_jobs(jobs)
    assert [j.job_id for j in order] == ["10", "13", "11", "12"]
    assert named == {"10": "team · 4.0 GPU-h · 42 tok · relay", "13": "team · 4.0 GPU-h · 42 tok · relay"}


def test_local_endpoint_key_is_private(tmp_path, monkeypatch):
    import os

    from r1console.adapters.deployment_groups import key_file, local_key
    from r1console.core.errors import R1Error

    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "cfg" / "config.yaml"))
    key = local_key()
    assert key == local_key() and len(key) > 40                 # made once, then reused
    assert os.stat(key_file()).st_mode & 0o777 == 0o600
    os.chmod(key_file(), 0o644)
    with pytest.raises(R1Error, match="readable by others"):
        local_key()


def test_status_usage_rows_and_table():
    from r1console.adapters.deployment_groups import Group
    from r1console.commands._usage import usage_rows, usage_table
    from r1console.core.slurm_parse import JobInfo

    group = Group(name="team", cluster="c", profile="h200x8", jobs=["7", "8"], gpus_per_job=8,
                  tokens={"generation": {"7": 1000, "8": 500}},
                  relay={"lead_time_s": 2700.0, "max_restarts": 3, "restart_backoff_s": 60.0})
    group.note("relay[0]: promote 8 (successor ready, 7 drains)")
    infos = {"7": JobInfo("7", state="CANCELLED", time_used=3 * 3600),
             "8": JobInfo("8", state="RUNNING", time_used=1800, gpus=8)}
    [row] = usage_rows([group], infos)
    assert row["gpu_hours"] == 28.0 and row["tokens_served"] == 1500 and row["active_jobs"] == ["8"]
    assert row["per_job"] == {"7": {"gpu_hours": 24.0, "tokens_served": 1000},
                              "8": {"gpu_hours": 4.0, "tokens_served": 500}}
    text = usage_table([row])
    assert "GPU-HOURS" in text and "28.00" in text and "relay 7 → 8" in text and "promote 8" in text


def test_submit_replicas_is_a_loop_around_the_single_submit(tmp_path, monkeypatch, capsys):
    """`submit --replicas 3 --name team`: three sbatch submits, one named deployment record."""
    import contextlib
    import json

    from r1console.adapters import deployment_groups
    from r1console.adapters.deployments import Deployment
    from r1console.cli import main
    from r1console.commands import submit as submit_cmd

    monkeypatch.setenv("R1CONSOLE_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "config.yaml").write_text("clusters: {c1: {ssh_host: c1.example}}\n")
    submitted = []

    class FakeClient:
        async def reconcile_all(self):  # no earlier submission lost its sbatch answer
            return []

        async def submit(self, loaded, *, workdir=None):
            job = str(100 + len(submitted))
            submitted.append(loaded.profile.name)
            return Deployment(deployment_id=f"d{job}", cluster="c1", job_id=job, profile=loaded.profile.name,
                              workdir="/w", script_path="/w/s", log_out="/w/o", log_err="/w/e", key_path=None,
                              port=8000)

    @contextlib.asynccontextmanager
    async def fake_session(spec, args):
        yield None, FakeClient()

    monkeypatch.setattr(submit_cmd, "slurm_session", fake_session)
    assert main(["submit", "tiny-cpu", "--replicas", "3", "--name", "team", "--cluster", "c1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert submitted == ["tiny-cpu"] * 3
    assert doc["deployment_name"] == "team" and [r["job_id"] for r in doc["replicas"]] == ["100", "101", "102"]
    group = deployment_groups.load("team")
    assert group.jobs == ["100", "101", "102"] and group.replicas == 3 and group.relay is None
    # the name is taken now
    assert main(["submit", "tiny-cpu", "--replicas", "2", "--name", "team", "--cluster", "c1"]) != 0
    assert "exists already" in capsys.readouterr().err
    # one job without a name stays a plain submit (no named deployment)
    assert main(["submit", "tiny-cpu", "--cluster", "c1", "--json"]) == 0
    assert "deployment_name" not in json.loads(capsys.readouterr().out)


def test_profile_serving_keys(tmp_path):
    from r1console.core.errors import R1Error
    from r1console.core.profiles import load_profile

    good = tmp_path / "svc.yaml"
    good.write_text("name: svc\nextends: tiny-cpu\nreplicas: 2\n"
                    "relay: {lead_time: 45m, max_restarts: 5, restart_backoff: 30s}\nidle_stop: 2h\n")
    profile = load_profile(str(good)).profile
    assert profile.replicas == 2 and profile.idle_stop == 7200
    assert profile.relay.policy_dict() == {"lead_time_s": 2700, "max_restarts": 5, "restart_backoff_s": 30}
    plain = load_profile("tiny-cpu").profile
    assert plain.replicas == 1 and plain.relay is None and plain.idle_stop is None
    for body, where in (("replicas: 0\n", "replicas"), ("relay: {lead_time: soon}\n", "relay.lead_time"),
                        ("relay: {lead_tme: 45m}\n", "lead_tme"), ("idle_stop: 0m\n", "idle_stop")):
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: bad\nextends: tiny-cpu\n" + body)
        with pytest.raises(R1Error) as err:
            load_profile(str(bad))
        assert "bad.yaml:3:" in str(err.value) and where in str(err.value), str(err.value)
