"""Profile -> SLURM batch script, from the template in slurm/.

The template is plain bash with ``{{name}}`` placeholders. Every value that comes from a profile
is inserted shell-quoted (``shlex.quote``) into variable assignments, except the profile's
``env.setup`` lines, which are shell code by design. ``#SBATCH`` values cannot be quoted (sbatch
parses them itself), so the profile model only admits characters that are safe there.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from r1console import __version__
from r1console.core import paths
from r1console.core.errors import R1Error
from r1console.core.profiles import Profile
from r1console.core.vllm_flags import serve_args

TEMPLATE = "vllm-serve.sbatch"
AUTH_MIDDLEWARE = "r1c_auth.py"  # written into the job by the script: `vllm serve --middleware r1c_auth.R1cAuth`
_AUTH_HEREDOC_END = "R1C_AUTH_PY"
LOG_OUT = "job.%N.%j.out"
LOG_ERR = "job.%N.%j.err"
_PLACEHOLDER = re.compile(r"\{\{([a-z0-9_]+)\}\}")
_SBATCH_PATH_SAFE = re.compile(r"^[A-Za-z0-9_./@%+=:,-]+\Z")


@dataclass(frozen=True)
class RenderPlan:
    """Where things live for one deployment; decided by the caller (render CLI or submit)."""

    workdir: str  # absolute path on the cluster, or ``~/...`` for the cluster's $HOME (then no --chdir)
    api_key_file: str | None  # where the key file is (or will be) on the cluster; None: no key


def key_file_for(profile: Profile, workdir: str, deployment_id: str) -> str | None:
    key = profile.server.api_key
    if key in (None, "none"):
        return None
    if key == "auto":
        return f"{workdir.rstrip('/')}/keys/{deployment_id}.key"
    return key


def sbatch_header(profile: Profile, workdir: str | None) -> list[str]:
    s = profile.slurm
    lines = [f"--job-name={s.job_name}", f"--nodes={s.nodes}", f"--ntasks-per-node={s.ntasks_per_node}"]
    if s.gpus_per_node:
        lines.append(f"--gpus-per-node={s.gpus_per_node}")
    if s.cpus_per_task:
        lines.append(f"--cpus-per-task={s.cpus_per_task}")
    if s.mem:
        lines.append(f"--mem={s.mem}")
    if s.exclusive:
        lines.append("--exclusive")
    for flag, value in (("partition", s.partition), ("account", s.account), ("qos", s.qos),
                        ("constraint", s.constraint), ("time", s.time)):
        if value:
            lines.append(f"--{flag}={value}")
    if workdir and _SBATCH_PATH_SAFE.match(workdir):
        lines.append(f"--chdir={workdir}")
    lines += [f"--output={LOG_OUT}", f"--error={LOG_ERR}"]
    lines += list(s.extra)
    return [f"#SBATCH {line}" for line in lines]


def _assign(name: str, value: str | int | None) -> str:
    return f"{name}={shlex.quote('' if value is None else str(value))}"


def _assign_path(name: str, value: str | None) -> str:
    """Like _assign, but ``~`` / ``~/rest`` becomes the cluster's ``"$HOME"/rest`` (expanded when the job runs)."""
    if value is not None and (value == "~" or value.startswith("~/")):
        rest = value[2:]
        return f'{name}="$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return _assign(name, value)


def _settings(profile: Profile, plan: RenderPlan) -> list[str]:
    args = serve_args(profile)
    array = " ".join(shlex.quote(a) for a in args)
    return [
        _assign("R1C_RENDERED_BY", __version__),
        _assign("R1C_PROFILE", profile.name),
        _assign("R1C_VLLM_VERSION", profile.vllm.version),
        _assign("R1C_BACKEND", profile.backend),
        _assign("R1C_MODEL_PATH", profile.model.path),
        _assign("R1C_PORT", profile.server.port),
        _assign_path("R1C_WORKDIR", plan.workdir),
        _assign_path("R1C_API_KEY_FILE", plan.api_key_file),
        _assign("R1C_RAY_WAIT_S", profile.ray.wait_timeout_s),
        _assign("R1C_RAY_HEAD_PORT", profile.ray.head_port),
        f"VLLM_ARGS=({array})",
    ]


def _exports(profile: Profile) -> list[str]:
    merged = {**profile.env.vars, **profile.vllm.env}
    return [f"export {name}={shlex.quote(value)}" for name, value in merged.items()]


def load_template(name: str = TEMPLATE) -> str:
    path = Path(paths.templates_dir()) / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise R1Error(f"{path}: cannot read the SLURM script template: {err.strerror}") from None


def auth_middleware_source() -> str:
    """The middleware module the job writes out (shipped next to the template)."""
    text = load_template(AUTH_MIDDLEWARE)
    if any(line.strip() == _AUTH_HEREDOC_END for line in text.splitlines()):
        raise R1Error(f"{AUTH_MIDDLEWARE} contains the line {_AUTH_HEREDOC_END}, which would end its heredoc")
    return text.rstrip("\n")


def render_script(profile: Profile, plan: RenderPlan, template: str | None = None) -> str:
    text = template if template is not None else load_template()
    values = {
        "sbatch_header": "\n".join(sbatch_header(profile, plan.workdir)),
        "r1console_version": __version__,
        "profile_name": profile.name,
        "settings": "\n".join(_settings(profile, plan)),
        "setup": "\n".join(profile.env.setup) if profile.env.setup else "# (no env.setup lines)",
        "exports": "\n".join(_exports(profile)) if _exports(profile) else "# (no env.vars)",
    }
    if "{{auth_middleware}}" in text:
        values["auth_middleware"] = auth_middleware_source()

    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise R1Error(f"SLURM template uses an unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(substitute, text)
