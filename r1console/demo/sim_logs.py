"""vLLM and uvicorn log lines as a given vLLM version prints them (docs/facts.md §2.1-§2.3, §2.6;
the real 0.32 startup in vllm-captures/startup_cold_full.log).

Two streams, as in a SLURM job's ``job.%N.%j.out`` / ``.err``:
  "out"  vLLM's logger (stdout) and uvicorn's access lines;
  "err"  tqdm's shard progress bars (written ``\\r...\\n``) and uvicorn's "Started server process" lines.

``startup_log_lines(StartupSpec(...), start)`` is the whole startup of a DeepSeek-R1 deployment, each
line with its offset in seconds, for the simulated cluster to play back (scaled) into job logs;
``SimServer`` writes ``ready_log_lines`` and ``access_line``/``stats_line`` lines itself.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from r1console.core.versions import parse_version
from r1console.demo.sim_engine import DEFAULT_KV_CACHE_TOKENS
from r1console.demo.sim_versions import DEFAULT_VERSION

CYAN, RESET = "\x1b[1;36m", "\x1b[0;0m"
KV_BYTES_PER_TOKEN = 70_272  # 61 layers x (512 + 64) x 2 B, BF16 MLA, per GPU (docs/facts.md §0)


@dataclass(frozen=True)
class LogLine:
    offset_s: float   # seconds after the start of the process
    stream: str       # "out" or "err"
    text: str         # one line, no trailing newline
    cr: bool = False  # tqdm bar: written as "\r" + text + "\n"

    def render(self) -> str:
        return ("\r" if self.cr else "") + self.text + "\n"


class VllmLogFormat:
    """Formats vLLM logger lines for one version.

    0.7: ``INFO 06-03 21:42:15 api_server.py:958] msg``; 0.8+: ``INFO 06-03 21:42:15 [api_server.py:1090] msg``;
    0.10-0.17: every line prefixed ``\\x1b[1;36m(APIServer pid=N)\\x1b[0;0m `` (colour even into files);
    0.18+: ``(APIServer pid=N) `` without colour when not a tty (as in the 0.32 capture).
    """

    def __init__(self, version: str = DEFAULT_VERSION, api_pid: int = 4242, engine_pid: int = 4378) -> None:
        self.version = version
        self.v = parse_version(version)
        self.api_pid = api_pid
        self.engine_pid = engine_pid

    def _process(self, name: str, pid: int) -> str:
        if self.v < (0, 10, 0):
            return ""
        tag = f"({name} pid={pid})"
        return (f"{CYAN}{tag}{RESET} " if self.v < (0, 18, 0) else f"{tag} ")

    def line(self, when: _dt.datetime, fileinfo: str, msg: str, *, level: str = "INFO",
             process: str = "APIServer", pid: int | None = None, ray: str | None = None) -> str:
        ts = when.strftime("%m-%d %H:%M:%S")
        loc = f"{fileinfo}]" if self.v < (0, 8, 0) else f"[{fileinfo}]"
        if pid is None:
            pid = self.api_pid if process == "APIServer" else self.engine_pid
        prefix = self._process(process, pid)
        if ray:
            prefix += f"({ray}) "
        return f"{prefix}{level} {ts} {loc} {msg}"


def access_line(client: str, method: str, target: str, status: int, http_version: str = "1.1") -> str:
    """uvicorn's access log line (stdout): ``INFO:     127.0.0.1:34504 - "GET /health HTTP/1.1" 200 OK``."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f'INFO:     {client} - "{method} {target} HTTP/{http_version}" {status} {phrase}'.rstrip()


def stats_line(fmt: VllmLogFormat, when: _dt.datetime, *, prompt_tps: float, gen_tps: float, running: int,
               waiting: int, kv_usage: float, preemptions: int = 0, prefix_hit_rate: float | None = 0.0,
               device: str = "GPU") -> str:
    """The periodic (~10 s) throughput line (docs/facts.md §2.6)."""
    v = fmt.v
    if v < (0, 8, 0):  # V0
        msg = (f"Avg prompt throughput: {prompt_tps:.1f} tokens/s, Avg generation throughput: {gen_tps:.1f} "
               f"tokens/s, Running: {running} reqs, Swapped: 0 reqs, Pending: {waiting} reqs, "
               f"{device} KV cache usage: {kv_usage * 100:.1f}%, CPU KV cache usage: 0.0%.")
        return fmt.line(when, "metrics.py:455", msg)
    parts = [f"Avg prompt throughput: {prompt_tps:.1f} tokens/s",
             f"Avg generation throughput: {gen_tps:.1f} tokens/s",
             f"Running: {running} reqs", f"Waiting: {waiting} reqs"]
    if v >= (0, 11, 0) and preemptions:
        parts.append(f"Preemptions: {preemptions}")
    parts.append(f"{device} KV cache usage: {kv_usage * 100:.1f}%")
    if prefix_hit_rate is not None:
        parts.append(f"Prefix cache hit rate: {prefix_hit_rate * 100:.1f}%")
    fileinfo = "loggers.py:111" if v < (0, 11, 0) else "loggers.py:335"
    return fmt.line(when, fileinfo, "Engine 000: " + ", ".join(parts))


def server_ready_message(version: str, host: str, port: int) -> tuple[str, str]:
    """(fileinfo, message) of the "server is listening" line for the version (docs/facts.md §2.3)."""
    v = parse_version(version)
    url = f"http://{host}:{port}"
    if v < (0, 8, 0):
        return "api_server.py:958", f"Starting vLLM API server on {url}"
    if v < (0, 9, 0):
        return "api_server.py:1090", f"Starting vLLM API server on {url}"
    if v < (0, 18, 0):
        return "api_server.py:1457", f"Starting vLLM API server 0 on {url}"
    return "entry.py:140", f"Starting vLLM server on {url}"


ROUTES_085 = (
    ("/openapi.json", "GET, HEAD"), ("/docs", "GET, HEAD"), ("/docs/oauth2-redirect", "GET, HEAD"),
    ("/redoc", "GET, HEAD"), ("/health", "GET"), ("/load", "GET"), ("/ping", "POST"), ("/ping", "GET"),
    ("/tokenize", "POST"), ("/detokenize", "POST"), ("/v1/models", "GET"), ("/version", "GET"),
    ("/v1/chat/completions", "POST"), ("/v1/completions", "POST"), ("/v1/embeddings", "POST"),
    ("/pooling", "POST"), ("/score", "POST"), ("/v1/score", "POST"), ("/v1/audio/transcriptions", "POST"),
    ("/rerank", "POST"), ("/v1/rerank", "POST"), ("/v2/rerank", "POST"), ("/invocations", "POST"),
    ("/metrics", "GET"),
)
ROUTES_032 = (
    ("/openapi.json", "GET, HEAD"), ("/docs", "GET, HEAD"), ("/docs/oauth2-redirect", "GET, HEAD"),
    ("/redoc", "GET, HEAD"), ("/load", "GET"), ("/version", "GET"), ("/kv_event_sources", "GET"),
    ("/health", "GET"), ("/metrics", "GET"), ("/tokenize", "POST"), ("/detokenize", "POST"),
    ("/v1/models", "GET"), ("/ping", "GET"), ("/ping", "POST"), ("/invocations", "POST"),
    ("/v1/chat/completions", "POST"), ("/v1/responses", "POST"), ("/v1/completions", "POST"),
    ("/v1/messages", "POST"),
)


def ready_log_lines(version: str, host: str, port: int, when: _dt.datetime, *, api_pid: int = 4242,
                    offset_s: float = 0.0) -> list[LogLine]:
    """From "Starting vLLM ... server on" to uvicorn's "Application startup complete." """
    fmt = VllmLogFormat(version, api_pid)
    v = fmt.v
    fileinfo, msg = server_ready_message(version, host, port)
    lines = [LogLine(offset_s, "out", fmt.line(when, fileinfo, msg)),
             LogLine(offset_s, "out", fmt.line(when, "launcher.py:28" if v < (0, 18, 0) else "launcher.py:186",
                                                "Available routes are:"))]
    route_file = "launcher.py:36" if v < (0, 18, 0) else "launcher.py:195"
    for path, methods in (ROUTES_032 if v >= (0, 18, 0) else ROUTES_085):
        lines.append(LogLine(offset_s, "out", fmt.line(when, route_file, f"Route: {path}, Methods: {methods}")))
    for text in (f"INFO:     Started server process [{api_pid}]", "INFO:     Waiting for application startup.",
                 "INFO:     Application startup complete."):
        lines.append(LogLine(offset_s, "err", text))
    return lines


@dataclass
class StartupSpec:
    """What a deployment's startup log depends on. ``from_profile`` reads an r1console Profile."""

    version: str = DEFAULT_VERSION
    model: str = "/path/to/DeepSeek-R1"
    served_model_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 8000
    nodes: int = 4
    gpus_per_node: int = 4
    tensor_parallel_size: int = 16
    pipeline_parallel_size: int = 1
    backend: str = "ray"
    max_model_len: int = 163_840
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float = 0.9
    kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS
    enforce_eager: bool = False
    reasoning_parser: str | None = "deepseek_r1"
    shards: int = 163
    load_seconds: float = 1200.0      # weights: ~20 min on VAST, 30-40 min on Lustre (docs/facts.md §1.6)
    head_ip: str = "10.20.1.124"
    worker_ips: tuple[str, ...] = ()
    api_pid: int = 4242
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: Any, **overrides: Any) -> "StartupSpec":
        v = profile.vllm
        spec = cls(
            version=v.version, model=profile.model.path, served_model_name=profile.model.served_name,
            host=profile.server.host, port=profile.server.port, nodes=profile.slurm.nodes,
            gpus_per_node=profile.slurm.gpus_per_node, tensor_parallel_size=profile.tensor_parallel_size,
            pipeline_parallel_size=v.pipeline_parallel_size, backend=profile.backend,
            max_model_len=v.max_model_len or 163_840, max_num_seqs=v.max_num_seqs,
            max_num_batched_tokens=v.max_num_batched_tokens, gpu_memory_utilization=v.gpu_memory_utilization,
            enforce_eager=v.enforce_eager, reasoning_parser=v.reasoning_parser,
        )
        for key, value in overrides.items():
            setattr(spec, key, value)
        return spec


def _tqdm_time(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def shard_bar(n: int, total: int, elapsed: float, desc: str = "Loading safetensors checkpoint shards") -> str:
    """vLLM's tqdm bar: ``{desc}: {percentage:3.0f}% Completed | {n}/{total} [{elapsed}<{remaining}, {rate}]``."""
    pct = 100.0 * n / total if total else 100.0
    if n == 0 or elapsed <= 0:
        remaining, rate = "?", "?it/s"
    else:
        per = elapsed / n
        remaining = _tqdm_time(per * (total - n))
        rate = f"{per:5.2f}s/it" if per > 1 else f"{n / elapsed:5.2f}it/s"
    return f"{desc}: {pct:3.0f}% Completed | {n}/{total} [{_tqdm_time(elapsed)}<{remaining}, {rate}]"


class _StartupLog:
    """The lines of one startup as they are written: the version's format, who prints (API server, engine
    core, Ray workers) and the list they go to."""

    def __init__(self, spec: StartupSpec, start: _dt.datetime) -> None:
        self.spec = spec
        self.start = start
        self.fmt = VllmLogFormat(spec.version, spec.api_pid, spec.api_pid + 136)
        self.v = self.fmt.v
        self.out: list[LogLine] = []
        self.world = spec.tensor_parallel_size * spec.pipeline_parallel_size
        self.ray = spec.backend == "ray"
        self.worker_ips = spec.worker_ips or tuple(f"10.20.1.{125 + i}" for i in range(max(0, spec.nodes - 1)))
        # decorate_logs names the engine process EngineCore_DP0 (0.10-~0.24); 0.32 logs "(EngineCore pid=N)"
        self.engine = "EngineCore_DP0" if (0, 10, 0) <= self.v < (0, 25, 0) else "EngineCore"

    def at(self, t: float) -> _dt.datetime:
        return self.start + _dt.timedelta(seconds=t)

    def log(self, t: float, fileinfo: str, msg: str, *, level: str = "INFO", process: str = "APIServer",
            ray_actor: str | None = None) -> None:
        self.out.append(LogLine(t, "out", self.fmt.line(self.at(t), fileinfo, msg, level=level, process=process,
                                                        ray=ray_actor)))

    def engine_log(self, t: float, fileinfo: str, msg: str) -> None:
        self.log(t, fileinfo, msg, process=self.engine)

    def worker(self, i: int) -> str | None:
        """Ray prefix of the rank-``i`` worker (head-node workers carry no ip)."""
        if not self.ray:
            return None
        pid = 927 + i * 7
        node = i // max(1, self.spec.gpus_per_node)
        return f"RayWorkerWrapper pid={pid}" + (f", ip={self.worker_ips[node - 1]}" if node >= 1 else "")

    def repeated(self, t: float, fileinfo: str, msg: str) -> None:
        """A line every worker prints: rank 0's, then Ray's deduplicated "[repeated Nx ...]"."""
        self.log(t, fileinfo, msg, process=self.engine, ray_actor=self.worker(0))
        if self.ray and self.world > 1:
            # Ray names a worker that repeated it: the first on another node, or rank 1 on a one-node job
            rank = self.spec.gpus_per_node if self.worker_ips and self.world > self.spec.gpus_per_node else 1
            self.log(t + 0.4, fileinfo, f"{msg} [repeated {self.world - 1}x across cluster]", process=self.engine,
                     ray_actor=self.worker(rank))


def _serve_args(spec: StartupSpec) -> dict[str, Any]:
    """The non-default arguments ``vllm serve`` logs for the spec."""
    args = {"model_tag": spec.model, "host": spec.host, "port": spec.port, "model": spec.model,
            "trust_remote_code": True, "max_model_len": spec.max_model_len,
            "tensor_parallel_size": spec.tensor_parallel_size,
            "distributed_executor_backend": spec.backend, "gpu_memory_utilization": spec.gpu_memory_utilization}
    optional = {"max_num_seqs": spec.max_num_seqs, "max_num_batched_tokens": spec.max_num_batched_tokens,
                "served_model_name": [spec.served_model_name] if spec.served_model_name else None,
                "reasoning_parser": spec.reasoning_parser, "enforce_eager": True if spec.enforce_eager else None}
    args.update({key: value for key, value in optional.items() if value})
    return args


def _api_server_start(w: _StartupLog) -> float:
    """The platform, the version banner and the arguments; the time after them."""
    spec, v, t = w.spec, w.v, 0.0
    if v < (0, 11, 0):
        w.log(t, "__init__.py:239", "Automatically detected platform cuda.")
    t += 4.0
    if v >= (0, 32, 0):
        for art in ("", "       █     █     █▄   ▄█",
                    f" ▄▄ ▄█ █     █     █ ▀▄▀ █  version {spec.version}",
                    f"  █▄█▀ █     █     █     █  model   {spec.model}",
                    "   ▀▀  ▀▀▀▀▀ ▀▀▀▀▀ ▀     ▀", ""):
            w.log(t, "api_utils.py:347", art)
    else:
        w.log(t, "api_server.py:1043", f"vLLM API server version {spec.version}")
    args = _serve_args(spec)
    if v >= (0, 10, 0):
        w.log(t, "api_utils.py:286" if v >= (0, 18, 0) else "utils.py:326", f"non-default args: {args!r}")
    else:
        inner = ", ".join(f"{k}={val!r}" for k, val in args.items())
        w.log(t, "api_server.py:1044", f"args: Namespace({inner})")
    return t + 14.0


def _engine_config(w: _StartupLog, t: float) -> float:
    """The model's architecture and the engine's config line (and Ray's placement group)."""
    spec, v = w.spec, w.v
    if v >= (0, 11, 0):
        w.log(t, "model.py:733", "Resolved architecture: DeepseekV3ForCausalLM")
        w.log(t, "model.py:2152", f"Using max model len {spec.max_model_len}")
    else:
        w.log(t, "config.py:717", "This model supports multiple tasks: {'generate', 'embed', 'reward', "
                                  "'classify', 'score'}. Defaulting to 'generate'.")
    mbt = spec.max_num_batched_tokens or 8192
    w.log(t, "config.py:2003" if v < (0, 11, 0) else "scheduler.py:229",
          f"Chunked prefill is enabled with max_num_batched_tokens={mbt}.")
    if v < (0, 11, 0):
        w.log(t, "cuda.py:156", "Forcing kv cache block size to 64 for FlashMLA backend.")
    t += 9.0
    served = spec.served_model_name or spec.model
    w.engine_log(t, "core.py:58" if v < (0, 11, 0) else "core.py:133",
                 f"Initializing a V1 LLM engine (v{spec.version}) with config: model='{spec.model}', "
                 f"speculative_config=None, tokenizer='{spec.model}', skip_tokenizer_init=False, tokenizer_mode=auto, "
                 f"revision=None, tokenizer_revision=None, trust_remote_code=True, dtype=torch.bfloat16, "
                 f"max_seq_len={spec.max_model_len}, download_dir=None, load_format=auto, "
                 f"tensor_parallel_size={spec.tensor_parallel_size}, "
                 f"pipeline_parallel_size={spec.pipeline_parallel_size}, "
                 f"disable_custom_all_reduce=False, quantization=fp8, enforce_eager={spec.enforce_eager}, "
                 f"kv_cache_dtype=auto, device_config=cuda, seed=0, served_model_name={served}")
    if w.ray:
        t += 2.0
        w.engine_log(t, "ray_utils.py:335", "No current placement group found. Creating a new placement group.")
        w.engine_log(t, "ray_distributed_executor.py:176", "use_ray_spmd_worker: True")
        t += 25.0
    return t


def _load_weights(w: _StartupLog, t: float) -> float:
    """The attention backend, the ranks, tqdm's bar over every shard and the loading times."""
    spec, v = w.spec, w.v
    w.repeated(t, "cuda.py:221" if v < (0, 11, 0) else "cuda.py:362",
               "Using FlashMLA backend on V1 engine." if v < (0, 11, 0) else "Using FLASHMLA attention backend.")
    t += 3.0
    w.log(t, "parallel_state.py:1004", f"rank 0 in world size {w.world} is assigned as DP rank 0, PP rank 0, "
                                       f"TP rank 0", process=w.engine, ray_actor=w.worker(0))
    w.repeated(t + 1.0, "gpu_model_runner.py:1329", f"Starting to load model {spec.model}...")
    t += 2.0
    w.log(t, "weight_utils.py:265", "Using model weights format ['*.safetensors']", process=w.engine,
          ray_actor=w.worker(0))
    t += 1.0
    total, per = spec.shards, spec.load_seconds / max(1, spec.shards)
    for n in range(total + 1):
        w.out.append(LogLine(t + n * per, "err", shard_bar(n, total, n * per), cr=True))
    t += spec.load_seconds
    w.out.append(LogLine(t, "err", ""))
    w.repeated(t + 0.5, "loader.py:458" if v < (0, 11, 0) else
               "default_loader.py:314" if v < (0, 32, 0) else "default_loader.py:501",
               f"Loading weights took {spec.load_seconds:.2f} seconds")
    t += 3.0
    gib_weights = 671e9 / w.world / 2**30 + 0.3
    if v < (0, 11, 0):
        w.repeated(t, "gpu_model_runner.py:1347",
                   f"Model loading took {gib_weights:.4f} GiB and {spec.load_seconds + 3.0:.6f} seconds")
    else:
        w.repeated(t, "gpu_model_runner.py:2862",
                   f"Model loading took {gib_weights:.4f} GiB memory and {spec.load_seconds + 3.0:.6f} seconds")
    return t + 18.0


def _kv_cache_and_warmup(w: _StartupLog, t: float) -> float:
    """The KV cache's size, CUDA graphs, the engine's init time and the default sampling params."""
    spec, v = w.spec, w.v
    if v >= (0, 9, 0):
        kv_gib = spec.kv_cache_tokens * KV_BYTES_PER_TOKEN / 2**30
        w.repeated(t, "gpu_worker.py:227", f"Available KV cache memory: {kv_gib:.2f} GiB")
    conc = spec.kv_cache_tokens / spec.max_model_len
    if v >= (0, 32, 0):
        w.engine_log(t, "kv_cache_utils.py:2327", f"GPU KV cache size: {spec.kv_cache_tokens:,} tokens, Maximum "
                                                  f"concurrency for {spec.max_model_len:,} tokens per request: "
                                                  f"{conc:.2f}x")
    else:
        w.engine_log(t, "kv_cache_utils.py:634", f"GPU KV cache size: {spec.kv_cache_tokens:,} tokens")
        w.engine_log(t, "kv_cache_utils.py:637", f"Maximum concurrency for {spec.max_model_len:,} tokens per "
                                                 f"request: {conc:.2f}x")
    init = 21.0
    if not spec.enforce_eager:
        t += 35.0
        init += 35.0
        w.repeated(t, "gpu_model_runner.py:1686", "Graph capturing finished in 35 secs, took 2.11 GiB")
    t += 2.0
    unit = " s" if v >= (0, 32, 0) else " seconds"  # 0.32: "took 68.40 s"
    w.engine_log(t, "core.py:159" if v < (0, 11, 0) else "core.py:402",
                 f"init engine (profile, create kv cache, warmup model) took {init:.2f}{unit}")
    if v < (0, 11, 0):
        blocks = spec.kv_cache_tokens // 64
        w.log(t, "loggers.py:134", f"vllm cache_config_info with initialization after num_gpu_blocks is: {blocks}")
    t += 1.0
    w.log(t, "serving_chat.py:118" if v < (0, 11, 0) else "model.py:1893",
          "Using default chat sampling params from model: {'temperature': 0.6, 'top_p': 0.95}")
    return t


def startup_log_lines(spec: StartupSpec | None = None, start: _dt.datetime | None = None) -> list[LogLine]:
    """The startup of ``vllm serve`` for DeepSeek-R1 as the version logs it, ending with the server
    ready (uvicorn "Application startup complete." on stderr). Offsets are seconds from ``start``."""
    spec = spec or StartupSpec()
    w = _StartupLog(spec, start or _dt.datetime.now())
    t = _api_server_start(w)
    t = _engine_config(w, t)
    t = _load_weights(w, t)
    t = _kv_cache_and_warmup(w, t)
    w.out.extend(ready_log_lines(spec.version, spec.host, spec.port, w.at(t), api_pid=spec.api_pid, offset_s=t))
    w.out.sort(key=lambda line: line.offset_s)  # stable: same-time lines keep their order
    return w.out
