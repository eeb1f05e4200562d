"""The user's config file (YAML): clusters, the default cluster, extra profile dirs, keymap, theme.

Location: ``$R1CONSOLE_CONFIG`` or ``<platformdirs user config dir>/config.yaml`` (see paths.py).
A missing file is an empty config; an invalid one is a ConfigError naming file:line:col.

Example::

    default_cluster: fasrc
    clusters:
      fasrc:
        ssh_host: holylogin          # a Host alias from ~/.ssh/config (HostName, User, ProxyJump... apply)
        workdir: ~/r1console
        partition: kempner_h100
        account: kempner_lab
      here:
        transport: local             # run on the login node itself
    profile_dirs: [~/my-r1-profiles]
    keymap: {cancel-job: ctrl+k}
    theme: textual-dark
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from r1console.core import paths, ssh_hosts
from r1console.core.errors import ClusterError, ConfigError
from r1console.core.profiles import _format_errors, combined_marks  # same error style as profiles
from r1console.core.yamlpos import load_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterSpec(_Strict):
    """How to reach one cluster's login node."""

    name: str = Field("", description="Filled from the key under `clusters:`.")
    transport: Literal["ssh", "local"] = Field("ssh", description="ssh (asyncssh) or local (run here).")
    ssh_host: str | None = Field(None, description="SSH Host alias or hostname; default: the cluster's name.")
    user: str | None = Field(None, description="SSH user (overrides ~/.ssh/config).")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port (overrides ~/.ssh/config).")
    ssh_config: str | None = Field(None, description="OpenSSH client config file; default ~/.ssh/config.")
    known_hosts: str | None = Field(None, description="known_hosts file; default ~/.ssh/known_hosts.")
    identity_file: str | None = Field(None, description="Private key (overrides ~/.ssh/config).")
    workdir: str = Field("~/r1console", description="Remote directory for scripts, logs and keys.")
    partition: str | None = Field(None, description="Default partition for profiles that set none.")
    account: str | None = Field(None, description="Default account for profiles that set none.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for remote commands (e.g. SLURM_CONF).")

    @property
    def host(self) -> str:
        return self.ssh_host or self.name


class UserConfig(_Strict):
    """The whole config file."""

    default_cluster: str | None = Field(None, description="Cluster used when --cluster is not given.")
    clusters: dict[str, ClusterSpec] = Field(default_factory=dict, description="Known clusters by name.")
    profile_dirs: list[str] = Field(default_factory=list, description="Extra profile directories, searched first.")
    keymap: dict[str, str] = Field(default_factory=dict, description="Binding id -> keys, e.g. cancel-job: ctrl+k.")
    theme: str = Field("textual-dark", description="Textual theme name.")

    @field_validator("clusters", mode="before")
    @classmethod
    def _fill_names(cls, value):
        if isinstance(value, dict):
            out = {}
            for name, spec in value.items():
                if isinstance(spec, dict):
                    spec = {"name": str(name), **spec}
                elif spec is None:
                    spec = {"name": str(name)}
                out[name] = spec
            return out
        return value

    def profile_search_dirs(self) -> list[Path]:
        from r1console.core.profiles import search_dirs

        return search_dirs(self.profile_dirs)

    def cluster(self, name: str | None) -> ClusterSpec:
        """A cluster by config name, ``local``, or an SSH host alias; default: ``default_cluster``."""
        chosen = name or self.default_cluster
        if not chosen:
            raise ConfigError(
                [f"no cluster given and no default_cluster in {paths.config_file()}"],
                hint="pass --cluster NAME (a cluster from the config, an SSH host alias, or 'local'), "
                "or try `r1console demo`",
            )
        if chosen in self.clusters:
            return self.clusters[chosen]
        if chosen == "local":
            return ClusterSpec(name="local", transport="local")
        if _looks_like_a_host(chosen) or ssh_hosts.knows(chosen):
            return ClusterSpec(name=chosen, ssh_host=chosen)
        known = sorted(self.clusters)
        close = difflib.get_close_matches(chosen, [*known, "local", *ssh_hosts.aliases()], n=1, cutoff=0.6)
        raise ClusterError(
            f"unknown cluster '{chosen}': not a cluster in {paths.config_file()} "
            f"(known: {', '.join(known) or 'none'}), not 'local', and not a Host in ~/.ssh/config",
            hint=f"did you mean '{close[0]}'?" if close else
            "add it under `clusters:` (r1console config init writes a starter config), add a Host entry "
            "to ~/.ssh/config, or give the full host name (login.example.edu)",
        )


def _looks_like_a_host(name: str) -> bool:
    """A full host name or address (login.example.edu, 10.0.0.5, localhost): taken as it is."""
    return "." in name or ":" in name or name == "localhost"


def load_user_config(path: Path | None = None) -> UserConfig:
    path = path or paths.config_file()
    if not path.exists():
        return UserConfig()
    located = load_file(path)
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1:1: the config must be a mapping (clusters:, default_cluster:, ...)"])
    marks = combined_marks(located)
    try:
        config = UserConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, marks, path, root=UserConfig)) from None
    if config.default_cluster and config.default_cluster not in config.clusters and config.default_cluster != "local":
        mark = marks.get(("default_cluster",))
        where = str(mark) if mark else str(path)
        raise ConfigError([f"{where}: default_cluster `{config.default_cluster}` is not under `clusters:`"])
    return config
