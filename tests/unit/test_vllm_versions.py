"""The vLLM version facts, and the simulator and the tests' fake server reading them."""

from __future__ import annotations

from _fake_openai import reshape
from r1console.core import vllm_versions as vv
from r1console.core.streaming import reasoning_of
from r1console.demo.vllm.versions import VersionProfile


def test_reasoning_field_by_version():
    cases = {"0.8.5.post1": "reasoning_content", "0.11.1": "reasoning_content", "0.11.2": "both",
             "0.15.1": "both", "0.16.0": "reasoning", "0.32.0": "reasoning"}
    assert {v: vv.reasoning_shape(v) for v in cases} == cases
    for version, shape in cases.items():
        assert VersionProfile(version).reasoning_keys == vv.REASONING_SHAPES[shape]


def test_every_shape_reads_back_once():
    chunk = {"choices": [{"index": 0, "delta": {"reasoning": "think", "content": None}}]}
    for shape, keys in vv.REASONING_SHAPES.items():
        delta = reshape(chunk, shape)["choices"][0]["delta"]
        assert [k for k in delta if k.startswith("reasoning")] == list(keys)
        assert reasoning_of(delta) == "think"
