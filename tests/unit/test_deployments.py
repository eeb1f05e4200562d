"""Deployment records: private, atomic, found again by job id (and cluster)."""

from __future__ import annotations

import json
import stat

import pytest

from r1console.adapters import deployments
from r1console.adapters.deployments import Deployment
from r1console.adapters.slurm_client import deployment_id_for
from r1console.core.errors import R1Error


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("R1CONSOLE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def make(job_id: str = "42", cluster: str = "c1", **kw) -> Deployment:
    base = dict(deployment_id=deployment_id_for("tiny-cpu"), cluster=cluster, job_id=job_id, profile="tiny-cpu",
                workdir="/home/u/r1console", script_path="/home/u/r1console/x.sbatch",
                log_out=f"/home/u/r1console/job.%N.{job_id}.out", log_err=f"/home/u/r1console/job.%N.{job_id}.err",
                key_path="/home/u/r1console/keys/x.key", port=8000, submitted_at="2026-11-28T12:00:00Z")
    base.update(kw)
    return Deployment(**base)


def test_deployment_ids_are_unique_and_named_after_the_profile():
    ids = {deployment_id_for("h200x8") for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("h200x8-") and i.count("-") == 2 for i in ids)


def test_save_is_private_and_roundtrips(state_dir):
    dep = make()
    path = deployments.save(dep)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert deployments.load(path) == dep
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_find_by_job_id_and_cluster():
    a, b = make("42", "c1"), make("43", "c1", submitted_at="2026-11-28T13:00:00Z")
    c = make("42", "c2")
    for dep in (a, b, c):
        deployments.save(dep)
    assert deployments.find("43") == b
    assert deployments.find("42", "c2") == c and deployments.find("42", "c1") == a
    with pytest.raises(R1Error, match="several clusters"):
        deployments.find("42")
    assert deployments.find("99") is None
    found, problems = deployments.load_all(cluster="c1")
    assert found == [b, a] and problems == []


def test_log_paths_need_the_batch_host():
    dep = make()
    assert dep.log_path("out") is None
    dep = deployments.update(dep, batch_host="node1.cluster")
    assert dep.log_path("out") == "/home/u/r1console/job.node1.42.out"
    assert dep.log_path("err") == "/home/u/r1console/job.node1.42.err"
    assert deployments.find("42") == dep


def test_a_broken_record_is_reported_not_fatal(state_dir):
    deployments.save(make("1"))
    (state_dir / "deployments" / "junk.json").write_text("{not json")
    (state_dir / "deployments" / "partial.json").write_text(json.dumps({"job_id": "2"}))
    found, problems = deployments.load_all()
    assert [d.job_id for d in found] == ["1"] and len(problems) == 2
    assert any("missing fields" in p for p in problems)
