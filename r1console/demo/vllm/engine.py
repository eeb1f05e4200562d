"""A pure model of a vLLM V1 engine serving DeepSeek-R1: no I/O, no asyncio, no wall clock.

What is modelled
  * ``max_num_seqs`` slots and a FIFO waiting queue (``vllm:num_requests_running`` / ``_waiting``).
  * A token budget per step (``max_num_batched_tokens``): running requests first (one decode token each,
    or a chunk of their prefill), then waiting requests are admitted while slots, budget and KV blocks last.
  * A paged KV cache of ``kv_cache_tokens`` in blocks of ``block_size``. When a running request needs a
    block and none is free, the most recently admitted request is preempted (recompute: it goes back
    to the front of the queue and later re-prefills prompt + generated tokens), like V1's scheduler.
  * A step clock. A step that runs ``b`` sequences takes ``DecodeCurve.step_seconds(b)`` plus its
    prefill tokens / ``prefill_tokens_per_s``. The curve is calibrated on the seed's measured default-
    batching throughput on 16 x H100 (docs/facts.md §1.6): ``b`` concurrent streams give the table's
    tok/s, e.g. 1 -> 10.3 tok/s, 64 -> 607.7, 1024 -> 5834.4, saturating at about 5,836 tok/s.
  * Output lengths like R1's: lognormal (heavy-tailed) reasoning of hundreds to thousands of tokens,
    then ``</think>``, a shorter answer and EOS; capped by ``max_tokens`` (finish_reason "length").

Times are simulated seconds (``SimEngine.now``); the HTTP server maps them to wall time with its
``time_scale``. Everything is deterministic for a given ``seed`` and sequence of calls.

The curve and length model are in ``vllm/calibration``, the request in ``vllm/request``, the counters and
histograms in ``vllm/metrics``; this module re-exports their names.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from r1console.demo.vllm.calibration import (  # importers of the engine still find the calibration
    DEFAULT_KV_CACHE_TOKENS,
    SEED_DEFAULT_BATCHING,
    SEED_SATURATION_TOK_S,
    DecodeCurve,
    LengthModel,
)
from r1console.demo.vllm.metrics import (  # the metrics moved out; importers of the engine still find them
    FINISH_REASONS,
    ITERATION_BUCKETS,
    ITL_BUCKETS,
    LATENCY_BUCKETS,
    PARAMS_N_BUCKETS,
    PREEMPTION_BUCKETS,
    TTFT_BUCKETS,
    EngineMetrics,
    Histogram,
    buckets_1_2_5,
)
from r1console.demo.vllm.request import (  # and the request model
    ABORTED,
    ANSWER,
    EOS,
    FINISHED,
    PREEMPTED,
    REASONING,
    RUNNING,
    THINK_END,
    WAITING,
    SimRequest,
)


@dataclass
class EngineConfig:
    max_num_seqs: int = 1024               # vLLM 0.8.5's default on >= 70 GiB GPUs (docs/facts.md §2.10)
    max_num_batched_tokens: int = 8192
    max_model_len: int = 163_840           # DeepSeek-R1 max_position_embeddings
    kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS
    block_size: int = 64                   # FlashMLA forces 64 (0.8.5); the CPU build uses 16
    prefill_tokens_per_s: float = 8000.0
    curve: DecodeCurve = field(default_factory=DecodeCurve)
    lengths: LengthModel = field(default_factory=LengthModel)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be at least 1")
        if self.max_num_batched_tokens < self.max_num_seqs:
            # vLLM: "max_num_batched_tokens (%d) must be greater than or equal to max_num_seqs (%d)."
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be greater "
                             f"than or equal to max_num_seqs ({self.max_num_seqs}).")
        if self.block_size < 1 or self.kv_cache_tokens < self.block_size:
            raise ValueError("kv_cache_tokens must hold at least one block")
        if self.kv_cache_tokens < self.max_model_len:
            raise ValueError(f"To serve at least one request with the model's max seq len "
                             f"({self.max_model_len}), the KV cache needs {self.max_model_len} tokens, "
                             f"more than kv_cache_tokens={self.kv_cache_tokens}. Decrease max_model_len.")
        if self.prefill_tokens_per_s <= 0:
            raise ValueError("prefill_tokens_per_s must be positive")

    @property
    def num_blocks(self) -> int:
        return self.kv_cache_tokens // self.block_size


@dataclass
class StepResult:
    start: float
    end: float
    num_seqs: int
    num_tokens: int                                           # scheduled (prefill + decode) tokens
    emitted: list[SimRequest] = field(default_factory=list)   # each emitted exactly one output token
    finished: list[SimRequest] = field(default_factory=list)
    preempted: list[SimRequest] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start


class SimEngine:
    """The scheduler and clock. Typical use::

        eng = SimEngine(EngineConfig(max_num_seqs=8, seed=1))
        r, a = eng.sample_lengths()
        eng.add_request(SimRequest("r1", prompt_tokens=40, max_tokens=4096, reasoning_tokens=r, answer_tokens=a))
        while eng.has_work():
            step = eng.step()   # advances eng.now by step.duration
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.now = 0.0
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.free_blocks = self.config.num_blocks
        self.metrics = EngineMetrics(self.config.max_model_len)
        self.steps = 0
        self._rng = random.Random(self.config.seed)

    # ---- requests ----------------------------------------------------------------------
    def sample_lengths(self, key: str | None = None) -> tuple[int, int]:
        """(reasoning_tokens, answer_tokens). With ``key`` the draw depends only on (seed, key);
        without, it comes from the engine's own seeded stream (call order matters)."""
        rng = random.Random(f"{self.config.seed}|{key}") if key is not None else self._rng
        return self.config.lengths.sample(rng)

    def add_request(self, req: SimRequest) -> None:
        if req.prompt_tokens > self.config.max_model_len:
            raise ValueError(f"prompt of {req.prompt_tokens} tokens exceeds max_model_len "
                             f"{self.config.max_model_len}")
        req.arrival = self.now
        req.status = WAITING
        self.waiting.append(req)

    def abort(self, req: SimRequest) -> bool:
        """Drop a request (client went away). Not counted in request_success (as in real vLLM)."""
        if req.status == RUNNING:
            self.running.remove(req)
        elif req.status in (WAITING, PREEMPTED):
            try:
                self.waiting.remove(req)
            except ValueError:
                return False
        else:
            return False
        self._free(req)
        req.status = ABORTED
        req.finished_at = self.now
        return True

    # ---- state -------------------------------------------------------------------------
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_usage(self) -> float:
        total = self.config.num_blocks
        return (total - self.free_blocks) / total

    def advance_to(self, t: float) -> None:
        """Let idle time pass (only moves forward)."""
        if t > self.now:
            self.now = t

    # ---- the step ----------------------------------------------------------------------
    def _free(self, req: SimRequest) -> None:
        self.free_blocks += req.blocks
        req.blocks = 0

    def _preempt_last(self, result: StepResult) -> SimRequest:
        victim = self.running.pop()
        self._free(victim)
        victim.computed = 0
        victim.status = PREEMPTED
        victim.num_preemptions += 1
        self.metrics.num_preemptions += 1
        self.waiting.appendleft(victim)
        result.preempted.append(victim)
        return victim

    def step(self) -> StepResult | None:
        """Schedule and run one step; ``None`` when there is nothing to run."""
        budget = self.config.max_num_batched_tokens
        scheduled: list[tuple[SimRequest, int]] = []
        result = StepResult(self.now, self.now, 0, 0)
        budget = self._schedule_running(scheduled, budget, result)
        if not result.preempted:
            budget = self._admit_waiting(scheduled, budget)
        if not scheduled:
            return None
        self._run(scheduled, self.config.max_num_batched_tokens - budget, result)
        if result.finished:
            done = {id(r) for r in result.finished}
            self.running = [r for r in self.running if id(r) not in done]
            for req in result.finished:
                self._free(req)
                self.metrics.on_finish(req)
        return result

    def _schedule_running(self, scheduled: list[tuple[SimRequest, int]], budget: int, result: StepResult) -> int:
        """Give the running requests their next tokens, in order, preempting from the back when blocks run
        out; the token budget left."""
        bs = self.config.block_size
        i = 0
        while i < len(self.running) and budget > 0:
            req = self.running[i]
            ntok = min(req.num_tokens - req.computed, budget)
            need = -(-(req.computed + ntok) // bs) - req.blocks
            preempted_self = False
            while need > self.free_blocks:
                if self._preempt_last(result) is req:
                    preempted_self = True
                    break
            if preempted_self:
                break
            self.free_blocks -= need
            req.blocks += need
            budget -= ntok
            scheduled.append((req, ntok))
            i += 1
        return budget

    def _admit_waiting(self, scheduled: list[tuple[SimRequest, int]], budget: int) -> int:
        """Start waiting requests while tokens, sequences and blocks allow; the token budget left."""
        cfg = self.config
        while self.waiting and budget > 0 and len(self.running) < cfg.max_num_seqs:
            req = self.waiting[0]
            ntok = min(req.num_tokens, budget)
            need = -(-ntok // cfg.block_size)
            if need > self.free_blocks:
                break
            self.waiting.popleft()
            self.free_blocks -= need
            req.blocks = need
            req.status = RUNNING
            if req.scheduled_at is None:
                req.scheduled_at = self.now
            self.running.append(req)
            budget -= ntok
            scheduled.append((req, ntok))
        return budget

    def _run(self, scheduled: list[tuple[SimRequest, int]], num_tokens: int, result: StepResult) -> None:
        """Advance the clock by the step's duration; every request whose prefill is done emits a token."""
        cfg = self.config
        num_seqs = len(scheduled)
        duration = cfg.curve.step_seconds(num_seqs) + (num_tokens - num_seqs) / cfg.prefill_tokens_per_s
        self.now += duration
        self.steps += 1
        now, m = self.now, self.metrics
        result.end, result.num_seqs, result.num_tokens = now, num_seqs, num_tokens
        m.h["iteration_tokens_total"].observe(num_tokens)
        itl = m.h["inter_token_latency_seconds"]
        for req, ntok in scheduled:
            req.computed += ntok
            if req.computed < req.num_tokens:
                continue  # chunked prefill not done yet
            req.generated += 1
            m.generation_tokens += 1
            if req.first_token_at is None:
                req.first_token_at = now
                m.prompt_tokens += req.prompt_tokens
                m.h["time_to_first_token_seconds"].observe(now - req.arrival)
            else:
                itl.observe(now - req.last_token_at)
            req.last_token_at = now
            result.emitted.append(req)
            if req.generated >= req.output_len:
                req.status = FINISHED
                req.finished_at = now
                result.finished.append(req)


def simulate_closed_loop(engine: SimEngine, concurrency: int, *, duration_s: float,
                         prompt_tokens: int = 32, warmup_s: float = 0.0,
                         max_tokens: int | None = None) -> dict[str, float]:
    """``concurrency`` clients that each send a new request as soon as the previous one finishes,
    for ``duration_s`` simulated seconds. Returns measured output tok/s (after ``warmup_s``),
    completed requests and the mean batch size. Pure: simulated time only."""
    cap = max_tokens or engine.config.max_model_len - prompt_tokens
    seq = 0

    def submit() -> None:
        nonlocal seq
        r, a = engine.sample_lengths()
        engine.add_request(SimRequest(f"c{seq}", prompt_tokens, cap, r, a))
        seq += 1

    for _ in range(concurrency):
        submit()
    start = engine.now
    tokens = completed = 0
    batch_sum = steps = 0
    while engine.now - start < duration_s:
        step = engine.step()
        if step is None:
            break
        if step.start - start >= warmup_s:
            tokens += len(step.emitted)
            batch_sum += step.num_seqs
            steps += 1
            completed += len(step.finished)
        for _ in step.finished:
            submit()
    measured = engine.now - start - warmup_s
    return {
        "tok_s": tokens / measured if measured > 0 else 0.0,
        "completed": float(completed),
        "mean_batch": batch_sum / steps if steps else 0.0,
        "sim_seconds": measured,
    }


__all__ = [
    "ABORTED",
    "ANSWER",
    "DEFAULT_KV_CACHE_TOKENS",
    "EOS",
    "FINISHED",
    "FINISH_REASONS",
    "ITERATION_BUCKETS",
    "ITL_BUCKETS",
    "LATENCY_BUCKETS",
    "PARAMS_N_BUCKETS",
    "PREEMPTED",
    "PREEMPTION_BUCKETS",
    "REASONING",
    "RUNNING",
    "SEED_DEFAULT_BATCHING",
    "SEED_SATURATION_TOK_S",
    "THINK_END",
    "TTFT_BUCKETS",
    "WAITING",
    "DecodeCurve",
    "EngineConfig",
    "EngineMetrics",
    "Histogram",
    "LengthModel",
    "SimEngine",
    "SimRequest",
    "StepResult",
    "buckets_1_2_5",
    "simulate_closed_loop",
]
