"""Named deployments of several jobs (replicas, relay successors) and the endpoint's local key.

One JSON file per name in ``state_dir()/groups/<name>.json`` (dir 0700, file 0600, atomic
writes), next to the per-job records of ``adapters.deployments``. A group says which profile
its jobs come from (so the relay can submit successors), how many replicas it runs, its relay
and idle-stop settings, every job it ever had (``jobs``; the chain per replica slot in
``chains``) and what it used (tokens served per job, GPU-hours are computed from SLURM).

The local endpoint key (``r1console serve``) is ``config_dir()/serve.key`` (0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from r1console.core import paths
from r1console.core.errors import R1Error

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Group:
    name: str
    cluster: str
    profile: str                      # profile name
    profile_ref: str = ""             # what submit was given (name or path), to submit successors
    overrides: list[str] = field(default_factory=list)
    workdir: str | None = None
    replicas: int = 1
    gpus_per_job: int = 0             # nodes x gpus_per_node of the profile (GPU-hours when SLURM omits them)
    relay: dict | None = None         # {"lead_time_s", "max_restarts", "restart_backoff_s"}
    idle_stop_s: float | None = None
    jobs: list[str] = field(default_factory=list)        # every job, in submit order
    chains: list[dict] = field(default_factory=list)     # per replica slot: current/successor/draining/restarts
    tokens: dict = field(default_factory=dict)           # TokenLedger.to_dict()
    events: list[list] = field(default_factory=list)     # [[iso time, text], ...] (last 200)
    created_at: str = ""
    stopped: str = ""                 # why it was stopped (idle stop, relay gave up), "" while live

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Group":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def note(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.events.append([stamp, text])
        del self.events[:-200]


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise R1Error(f"deployment name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                      "(starting with a letter or digit)")
    return name


def groups_dir() -> Path:
    return paths.state_dir() / "groups"


def group_path(name: str) -> Path:
    return groups_dir() / f"{check_name(name)}.json"


def _atomic_write(target: Path, data: str, mode: int = 0o600) -> None:
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), mode)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise R1Error(f"{target}: cannot write: {err.strerror or err}") from None


def save(group: Group) -> Path:
    target = group_path(group.name)
    _atomic_write(target, json.dumps(group.to_dict(), indent=2, sort_keys=True) + "\n")
    return target


def load(name: str) -> Group:
    path = group_path(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return Group.from_dict(data)
    except FileNotFoundError:
        raise R1Error(f"no deployment named {name!r}", hint="`r1console submit PROFILE --name NAME "
                      "[--replicas N]` creates one; `r1console status` lists them") from None
    except (OSError, ValueError, TypeError) as err:
        raise R1Error(f"{path}: unreadable deployment record ({err})") from None


def exists(name: str) -> bool:
    return group_path(name).is_file()


def load_all() -> list[Group]:
    folder = groups_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(R1Error):
            found.append(load(path.stem))
    return found


def group_of(job_id: str, groups: list[Group] | None = None) -> Group | None:
    for group in groups if groups is not None else load_all():
        if str(job_id) in group.jobs:
            return group
    return None


# ---- the local endpoint key -------------------------------------------------------------

def key_file() -> Path:
    return paths.config_dir() / "serve.key"


def local_key(create: bool = True) -> str:
    """The endpoint's key (made once, 0600). A key file that is readable by others is refused."""
    path = key_file()
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise R1Error(f"{path} is readable by others (mode {mode:o})", hint=f"chmod 600 {path}")
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    if not create:
        raise R1Error(f"no endpoint key yet ({path})", hint="run `r1console serve` once")
    key = "r1c-" + secrets.token_urlsafe(32)
    _atomic_write(path, key + "\n")
    return key


__all__ = ["Group", "check_name", "exists", "group_of", "group_path", "groups_dir", "key_file", "load",
           "load_all", "local_key", "save"]
