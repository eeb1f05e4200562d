"""The batch screen drives the real batch runner against the simulated server to the end."""

from __future__ import annotations

import json

from r1console.demo.sim_server import SimServer
from r1console.tui.screens.batch import BatchScreen
from tests_helpers import Host, opener_for, wait_until


def host(url: str, key: str | None) -> Host:
    return Host(lambda: BatchScreen("sim", opener_for(url, key)))


async def test_batch_screen_runs_a_seed_prompt_file(tmp_path):
    prompts = {"system_prompt": "Be brief.",
               "user_prompts": [{"question_tag": f"q{i}", "content": f"Question {i}?"} for i in range(1, 13)]}
    source = tmp_path / "input_prompts.json"
    source.write_text(json.dumps(prompts))
    output = tmp_path / "output_responses.json"
    async with SimServer(vllm_version="0.8.5", max_num_seqs=4, time_scale=0.0, api_key="k", seed=1) as srv:
        app = host(srv.url, "k")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, BatchScreen)
            screen.query_one("#batch-input").value = str(source)
            screen.query_one("#batch-output").value = str(output)
            screen.query_one("#batch-concurrency").value = "4"
            screen.query_one("#batch-max-tokens").value = "64"
            await pilot.press("ctrl+r")
            await wait_until(pilot, output.exists, timeout=30)
            await wait_until(pilot, lambda: "finished" in str(screen.query_one("#batch-summary").render()))
            text = str(screen.query_one("#batch-summary").render())
            assert "12/12 done (12 ok, 0 failed)" in text and "TTFT" in text
    results = json.loads(output.read_text())
    assert [r["question_tag"] for r in results] == [f"q{i}" for i in range(1, 13)]  # input order
    assert all(r["response"]["reasoning"] for r in results)  # 0.8.5 sends reasoning_content: read it
