"""The batch script of a simulated job: sbatch's options and r1console's settings block read back the way
sbatch and bash read them (:func:`parse_script`), and the Profile rebuilt from them (:func:`profile_from_script`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from r1console.core.slurm_parse import parse_duration

#: sbatch's short options that take a value, by their long name.
_SHORT = {"A": "account", "C": "constraint", "D": "chdir", "G": "gpus", "J": "job-name", "N": "nodes",
          "c": "cpus-per-task", "d": "dependency", "e": "error", "i": "input", "n": "ntasks",
          "o": "output", "p": "partition", "q": "qos", "t": "time", "w": "nodelist", "x": "exclude"}
#: long options that never take a value (``--exclusive`` may: ``--exclusive=user``).
_FLAGS = {"exclusive", "parsable", "hold", "requeue", "no-requeue", "overcommit", "wait", "test-only",
          "contiguous", "spread-job", "use-min-nodes", "ignore-pbs", "no-kill", "quiet", "verbose"}
_SHORT_FLAGS = {"H": "hold", "O": "overcommit", "Q": "quiet", "W": "wait", "k": "no-kill", "s": "oversubscribe",
                "v": "verbose", "h": "help", "V": "version"}


class ScriptError(ValueError):
    """sbatch would refuse the options (the message is sbatch's own)."""


def parse_sbatch_args(tokens: list[str], *, stop_at_positional: bool = False) -> tuple[dict[str, str], list[str]]:
    """sbatch options (``--nodes=2``, ``--nodes 2``, ``-N2``, ``-N 2``, ``--exclusive``) -> ({long: value}, rest).

    With ``stop_at_positional`` (the command line) parsing ends at the script path, like getopt with
    ``+``: the rest are the script and its arguments.
    """
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            rest.extend(tokens[i + 1:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok[2:].partition("=")
            if not eq and name not in _FLAGS:
                if i + 1 >= len(tokens):
                    raise ScriptError(f"sbatch: option '--{name}' requires an argument")
                value = tokens[i + 1]
                i += 1
            opts[name] = value
        elif tok.startswith("-") and len(tok) > 1:
            letter = tok[1]
            if letter in _SHORT:
                value = tok[2:]
                if not value:
                    if i + 1 >= len(tokens):
                        raise ScriptError(f"sbatch: option requires an argument -- '{letter}'")
                    value = tokens[i + 1]
                    i += 1
                opts[_SHORT[letter]] = value
            elif letter in _SHORT_FLAGS:
                opts[_SHORT_FLAGS[letter]] = ""
            else:
                raise ScriptError(f"sbatch: invalid option -- '{letter}'")
        else:
            if stop_at_positional:
                rest.extend(tokens[i:])
                break
            rest.append(tok)
        i += 1
    return opts, rest


_SETTING = re.compile(r"^(R1C_[A-Z0-9_]+)=(.*)$")
_ARRAY = re.compile(r"^VLLM_ARGS=\((.*)\)\s*$")


@dataclass
class JobScript:
    path: str
    text: str
    options: dict[str, str] = field(default_factory=dict)   # #SBATCH, overridden by the command line
    settings: dict[str, str] = field(default_factory=dict)  # R1C_* = value (unquoted)
    vllm_args: list[str] = field(default_factory=list)
    markers: bool = False                                    # the script prints `[r1console] …` lines

    # ---- what it asks SLURM for -------------------------------------------------------------
    @property
    def nodes(self) -> int:
        text = self.options.get("nodes", "1")
        m = re.match(r"^(\d+)(?:-(\d+))?$", text.strip())
        if not m:
            raise ScriptError(f"sbatch: error: invalid node count `{text}'")
        return max(1, int(m.group(1)))

    @property
    def gpus_per_node(self) -> int:
        if "gpus-per-node" in self.options:
            value = self.options["gpus-per-node"].rsplit(":", 1)[-1]
            return int(value) if value.isdigit() else 0
        gres = self.options.get("gres", "")
        m = re.search(r"gpu(?::[\w-]+)?:(\d+)", gres)
        return int(m.group(1)) if m else 0

    @property
    def cpus_per_task(self) -> int:
        value = self.options.get("cpus-per-task", "1")
        return int(value) if value.isdigit() else 1

    @property
    def ntasks_per_node(self) -> int:
        value = self.options.get("ntasks-per-node", "1")
        return int(value) if value.isdigit() else 1

    @property
    def mem_mb(self) -> int | None:
        return parse_mem_mb(self.options.get("mem"))

    @property
    def time_limit_s(self) -> int | None:
        text = self.options.get("time")
        if text is None or text.strip().upper() in ("", "UNLIMITED", "INFINITE"):
            return None
        seconds = parse_duration(text)
        if seconds is None:
            raise ScriptError("sbatch: error: Invalid --time specification")
        return seconds

    @property
    def job_name(self) -> str:
        return self.options.get("job-name") or self.path.rsplit("/", 1)[-1]

    @property
    def output(self) -> str:
        return self.options.get("output") or "slurm-%j.out"

    @property
    def error(self) -> str:
        return self.options.get("error") or self.output

    @property
    def exclusive(self) -> bool:
        return "exclusive" in self.options

    # ---- what it runs -----------------------------------------------------------------------
    def vllm_flag(self, name: str) -> str | None:
        """``--name value`` / ``--name=value`` in VLLM_ARGS; "" for a flag without a value."""
        args = self.vllm_args
        for i, arg in enumerate(args):
            if arg == name:
                nxt = args[i + 1] if i + 1 < len(args) else ""
                return "" if nxt.startswith("--") else nxt
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    @property
    def version(self) -> str:
        return self.settings.get("R1C_VLLM_VERSION") or "0.8.5"

    @property
    def port(self) -> int:
        text = self.settings.get("R1C_PORT") or self.vllm_flag("--port") or "8000"
        return int(text) if text.isdigit() else 8000

    @property
    def backend(self) -> str:
        return self.settings.get("R1C_BACKEND") or self.vllm_flag("--distributed-executor-backend") or (
            "ray" if self.nodes > 1 else "mp")

    @property
    def key_file(self) -> str | None:
        return self.settings.get("R1C_API_KEY_FILE") or None


def parse_mem_mb(text: str | None) -> int | None:
    if not text:
        return None
    m = re.match(r"^(\d+)([KMGT]?)B?$", text.strip().upper())
    if not m:
        raise ScriptError("sbatch: error: Invalid --mem specification")
    n, unit = int(m.group(1)), m.group(2) or "M"
    return {"K": max(1, n // 1024), "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]


def parse_script(path: str, text: str, cli_options: dict[str, str] | None = None) -> JobScript:
    """The script as sbatch (``#SBATCH`` up to the first command) and bash (the settings) read it."""
    if not text.startswith("#!"):
        raise ScriptError("sbatch: error: This does not look like a batch script.  The first\n"
                          "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
                          "sbatch: error: For instance: #!/bin/sh")
    options: dict[str, str] = {}
    header = True
    settings: dict[str, str] = {}
    vllm_args: list[str] = []
    for line in text.splitlines()[1:]:
        stripped = line.strip()
        if header:
            if stripped.startswith("#SBATCH"):
                try:
                    tokens = shlex.split(stripped[len("#SBATCH"):], comments=True)
                except ValueError:
                    tokens = stripped[len("#SBATCH"):].split()
                opts, _ = parse_sbatch_args(tokens)
                options.update(opts)
                continue
            if not stripped or stripped.startswith("#"):
                continue
            header = False
        m = _SETTING.match(stripped)
        if m:
            try:
                words = shlex.split(m.group(2))
            except ValueError:
                words = [m.group(2)]
            settings[m.group(1)] = " ".join(words)
            continue
        m = _ARRAY.match(stripped)
        if m:
            try:
                vllm_args = shlex.split(m.group(1))
            except ValueError:
                vllm_args = m.group(1).split()
    options.update(cli_options or {})
    return JobScript(path=path, text=text, options=options, settings=settings, vllm_args=vllm_args,
                     markers="r1c_mark" in text)


def profile_from_script(script: JobScript) -> Any:
    """A Profile with what the script runs (None when it cannot be validated)."""
    from r1console.core.profiles import Profile

    def num(flag: str, kind: type = int) -> Any:
        value = script.vllm_flag(flag)
        try:
            return kind(value) if value not in (None, "") else None
        except ValueError:
            return None

    settings = script.settings
    vllm: dict[str, Any] = {
        "version": script.version,
        "max_num_seqs": num("--max-num-seqs"),
        "max_num_batched_tokens": num("--max-num-batched-tokens"),
        "gpu_memory_utilization": num("--gpu-memory-utilization", float) or 0.9,
        "max_model_len": num("--max-model-len"),
        "enforce_eager": script.vllm_flag("--enforce-eager") is not None,
        "reasoning_parser": script.vllm_flag("--reasoning-parser") or None,
        "distributed_executor_backend": script.backend if script.backend in ("ray", "mp") else None,
        "tensor_parallel_size": num("--tensor-parallel-size"),
        "pipeline_parallel_size": num("--pipeline-parallel-size") or 1,
        "kv_cache_dtype": script.vllm_flag("--kv-cache-dtype") or "auto",
        "enable_expert_parallel": script.vllm_flag("--enable-expert-parallel") is not None,
    }
    slurm: dict[str, Any] = {
        "nodes": script.nodes, "gpus_per_node": script.gpus_per_node,
        "cpus_per_task": script.cpus_per_task, "constraint": script.options.get("constraint"),
        "job_name": script.job_name if re.match(r"^[\w.+-]+$", script.job_name) else "r1console",
    }
    data = {
        "name": settings.get("R1C_PROFILE") or "job",
        "slurm": slurm,
        "model": {"path": settings.get("R1C_MODEL_PATH") or "/path/to/DeepSeek-R1",
                  "served_name": script.vllm_flag("--served-model-name") or None},
        "vllm": vllm,
        "server": {"port": script.port, "host": script.vllm_flag("--host") or "0.0.0.0", "api_key": "none"},
    }
    for attempt in range(3):
        try:
            return Profile.model_validate(data)
        except Exception:  # pydantic ValidationError: drop what the model rejects, keep the rest
            if attempt == 0:
                data["vllm"] = {k: v for k, v in vllm.items() if k in ("version", "distributed_executor_backend")}
            elif attempt == 1:
                data["slurm"] = {"nodes": script.nodes, "gpus_per_node": script.gpus_per_node}
                data["name"] = "job"
    return None
