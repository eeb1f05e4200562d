"""The user config: clusters by name, 'local', SSH aliases, defaults and validation."""

from __future__ import annotations

import pytest

from r1console.core.errors import ConfigError
from r1console.core.userconfig import load_user_config


def test_missing_file_is_empty_config(tmp_path):
    config = load_user_config(tmp_path / "none.yaml")
    assert config.clusters == {} and config.default_cluster is None


def test_cluster_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host *\n  ServerAliveInterval 30\nHost myalias\n  HostName h.example\n")
    path = tmp_path / "c.yaml"
    path.write_text("default_cluster: fas\nclusters:\n  fas: {ssh_host: holylogin, partition: gpu}\n  here:\n"
                    "    transport: local\n")
    config = load_user_config(path)
    assert config.cluster(None).host == "holylogin" and config.cluster(None).partition == "gpu"
    assert config.cluster("here").transport == "local"
    assert config.cluster("local").transport == "local"
    alias = config.cluster("myalias")  # not in the config: a Host alias in ~/.ssh/config
    assert alias.transport == "ssh" and alias.host == "myalias"


def test_no_cluster_anywhere_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no cluster given and no default_cluster") as info:
        load_user_config(tmp_path / "none.yaml").cluster(None)
    assert "r1console demo" in str(info.value)


def test_default_cluster_must_exist(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("default_cluster: nope\nclusters: {a: {}}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1:1: default_cluster `nope` is not under `clusters:`"):
        load_user_config(path)


def test_bad_port(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clusters:\n  a: {port: 70000}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2:13: `clusters.a.port`"):
        load_user_config(path)
