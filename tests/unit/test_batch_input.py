"""Batch input: format detection and every validation error (file:line, tag, nothing sent)."""

from __future__ import annotations

import json

import pytest

from r1console.core.batch_input import (
    MAX_PROBLEMS_SHOWN,
    BatchItem,
    load_batch_input,
    parse_batch_input,
)
from r1console.core.errors import ConfigError, R1Error

SEED = """{
  "system_prompt": "You are a physicist.",
  "user_prompts": [
    {"question_tag": "q1", "content": "What are gravitational waves?"},
    {
      "question_tag": "q2",
      "content": "Why is the sky blue?"
    },
    {"question_tag": "q3", "content": "What is a neutron star?"}
  ]
}
"""


def problems(text: str, source: str = "in.json") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_batch_input(text, source=source)
    assert "nothing was sent" in str(info.value) or "expected" in str(info.value)
    return info.value.problems


# -- the three formats -------------------------------------------------------------------------

def test_seed_format_in_input_order_with_system_prompt_and_lines():
    batch = parse_batch_input(SEED, source="input_prompts.json")
    assert batch.format == "seed"
    assert batch.ids == ["q1", "q2", "q3"]
    assert [i.index for i in batch.items] == [0, 1, 2]
    assert [i.line for i in batch.items] == [4, 5, 9]
    q2 = batch.items[1]
    assert q2.messages == ({"role": "system", "content": "You are a physicist."},
                           {"role": "user", "content": "Why is the sky blue?"})
    assert q2.prompt == "Why is the sky blue?"
    assert batch.system_prompt == "You are a physicist."


def test_seed_without_or_with_empty_system_prompt_sends_no_system_message():
    doc = {"system_prompt": "", "user_prompts": [{"question_tag": "a", "content": "hi"}]}
    batch = parse_batch_input(json.dumps(doc))
    assert batch.items[0].messages == ({"role": "user", "content": "hi"},)
    doc = {"user_prompts": [{"question_tag": "a", "content": "hi"}]}
    assert parse_batch_input(json.dumps(doc)).items[0].messages == ({"role": "user", "content": "hi"},)


def test_openai_batch_jsonl_keeps_body_params_and_model():
    lines = [
        {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "deepseek-ai/DeepSeek-R1", "messages": [{"role": "user", "content": "2+2?"}],
                  "max_tokens": 64, "temperature": 0.6, "stream": False}},
        {"custom_id": "r2", "body": {"messages": [{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}},
    ]
    batch = parse_batch_input("\n".join(json.dumps(x) for x in lines) + "\n\n", source="b.jsonl")
    assert batch.format == "openai"
    assert batch.ids == ["r1", "r2"]
    r1 = batch.items[0]
    assert r1.params == {"max_tokens": 64, "temperature": 0.6}  # stream/model/messages are the runner's
    assert r1.model == "deepseek-ai/DeepSeek-R1"
    assert r1.line == 1 and batch.items[1].line == 2
    assert batch.items[1].prompt == "hi"


def test_simple_jsonl_with_int_ids_and_optional_system():
    text = '{"id": 1, "prompt": "one"}\n{"id": "two", "prompt": "two", "system": "terse"}\n'
    batch = parse_batch_input(text, source="p.jsonl")
    assert batch.format == "simple"
    assert batch.ids == ["1", "two"]
    assert batch.items[1].messages[0] == {"role": "system", "content": "terse"}


def test_single_line_jsonl_and_bom_are_accepted():
    assert parse_batch_input('\ufeff{"id": "a", "prompt": "x"}').format == "simple"


def test_request_hash_changes_with_prompt_or_params():
    a = BatchItem(id="a", index=0, messages=({"role": "user", "content": "x"},))
    b = BatchItem(id="a", index=0, messages=({"role": "user", "content": "y"},))
    c = BatchItem(id="a", index=0, messages=({"role": "user", "content": "x"},), params={"max_tokens": 5})
    assert len({a.request_hash(), b.request_hash(), c.request_hash()}) == 3
    assert a.request_hash() == BatchItem(id="a", index=3, messages=a.messages, line=9).request_hash()


# -- validation errors: seed ---------------------------------------------------------------------

def test_seed_bad_json_names_line_and_column():
    text = SEED.replace('"q2",', '"q2"')
    (p,) = problems(text)
    assert p.startswith("in.json:7:") and "invalid JSON" in p


def test_seed_duplicate_tag_names_both_lines():
    text = SEED.replace('"q3"', '"q1"')
    (p,) = problems(text)
    assert p == "in.json:9: duplicate question_tag 'q1' (first at line 4)"


def test_seed_empty_prompt_missing_fields_and_types_all_reported_together():
    doc = """{"system_prompt": "s", "user_prompts": [
  {"question_tag": "q1", "content": "   "},
  {"content": "no tag"},
  {"question_tag": "q3"},
  {"question_tag": "q4", "content": 5},
  "just a string",
  {"question_tag": "", "content": "x"},
  {"question_tag": true, "content": "x"}
]}"""
    got = problems(doc)
    assert got == [
        "in.json:2: user_prompts[0] ('q1'): empty prompt (content is blank)",
        "in.json:3: user_prompts[1]: missing field question_tag",
        "in.json:4: user_prompts[2] ('q3'): missing field content",
        "in.json:5: user_prompts[3] ('q4'): content must be a string, found a number",
        'in.json:6: user_prompts[4] must be an object {"question_tag", "content"}, found a string',
        "in.json:7: user_prompts[5]: question_tag is empty",
        "in.json:8: user_prompts[6]: question_tag must be a string, found a boolean",
    ]


def test_seed_shape_errors():
    assert problems('{"system_prompt": "x"}') == [
        'in.json:1: missing field user_prompts (a list of {"question_tag", "content"})']
    assert problems('{"user_prompts": []}') == ["in.json:1: user_prompts is empty: no prompts"]
    assert problems('{"user_prompts": {"a": 1}}') == ["in.json:1: user_prompts must be a list, found an object"]
    got = problems('{\n"system_prompt": 3,\n"user_prompts": [{"question_tag": "a", "content": "b"}]}')
    assert got == ["in.json:2: system_prompt must be a string, found a number"]


def test_empty_file_list_and_scalar_are_rejected_with_the_formats():
    with pytest.raises(ConfigError) as info:
        parse_batch_input("  \n", source="e.json")
    assert "empty" in str(info.value) and "question_tag" in str(info.value)
    with pytest.raises(ConfigError, match="a JSON list is not a batch input"):
        parse_batch_input('[{"question_tag": "q1"}]', source="l.json")


# -- validation errors: JSONL --------------------------------------------------------------------

def test_jsonl_bad_json_line_names_line_and_other_lines_still_checked():
    text = ('{"id": "a", "prompt": "x"}\n'
            '{"id": "b", "prompt": "y"\n'
            '{"id": "c", "prompt": ""}\n')
    got = problems(text, source="p.jsonl")
    assert got[0].startswith("p.jsonl:2:") and "invalid JSON" in got[0]
    assert got[1] == "p.jsonl:3: id 'c': empty prompt"


def test_jsonl_duplicates_missing_fields_and_types():
    text = "\n".join([
        '{"id": "a", "prompt": "x"}',
        '{"id": "a", "prompt": "again"}',
        '{"prompt": "no id"}',
        '{"id": "d"}',
        '{"id": "e", "prompt": ["x"]}',
        '[1, 2]',
        '{"id": "g", "prompt": "ok", "system": 7}',
    ])
    assert problems(text, source="p.jsonl") == [
        "p.jsonl:2: duplicate id 'a' (first at line 1)",
        "p.jsonl:3: missing field id",
        "p.jsonl:4: id 'd': missing field prompt",
        "p.jsonl:5: id 'e': prompt must be a string, found a list",
        "p.jsonl:6: expected a JSON object, found a list",
        "p.jsonl:7: id 'g': system must be a string, found a number",
    ]


def test_openai_jsonl_every_error():
    def line(**rec):
        return json.dumps(rec)

    user = [{"role": "user", "content": "q"}]
    text = "\n".join([
        line(custom_id="ok", body={"messages": user}),
        line(custom_id="m", method="GET", body={"messages": user}),
        line(custom_id="u", url="/v1/embeddings", body={"input": "x"}),
        line(custom_id="nb"),
        line(custom_id="bb", body="x"),
        line(custom_id="nm", body={}),
        line(custom_id="em", body={"messages": []}),
        line(custom_id="role", body={"messages": [{"role": "robot", "content": "x"}, *user]}),
        line(custom_id="empty", body={"messages": [{"role": "user", "content": " "}]}),
        line(custom_id="nouser", body={"messages": [{"role": "system", "content": "s"}]}),
        line(custom_id="n2", body={"messages": user, "n": 2}),
        line(custom_id="mt", body={"messages": user, "max_tokens": 0}),
        line(custom_id="ok", body={"messages": user}),
        line(body={"messages": user}),
        line(custom_id="parts", body={"messages": [{"role": "user", "content": 3}]}),
    ])
    got = problems(text, source="b.jsonl")
    assert got == [
        "b.jsonl:2: custom_id 'm': method must be \"POST\", found 'GET'",
        "b.jsonl:3: custom_id 'u': url '/v1/embeddings' is not supported: only /v1/chat/completions "
        "(chat completions) is streamed",
        "b.jsonl:3: custom_id 'u': missing field body.messages",
        "b.jsonl:4: custom_id 'nb': missing field body (the chat completion request)",
        "b.jsonl:5: custom_id 'bb': body must be an object, found a string",
        "b.jsonl:6: custom_id 'nm': missing field body.messages",
        "b.jsonl:7: custom_id 'em': body.messages must be a non-empty list, found an empty list",
        "b.jsonl:8: custom_id 'role': body.messages[0].role must be one of "
        "['assistant', 'developer', 'system', 'tool', 'user'], found 'robot'",
        "b.jsonl:9: custom_id 'empty': empty prompt (body.messages[0] has no text)",
        "b.jsonl:10: custom_id 'nouser': body.messages has no user message",
        "b.jsonl:11: custom_id 'n2': body.n must be 1 (one reply per request), found 2",
        "b.jsonl:12: custom_id 'mt': body.max_tokens must be a positive integer, found 0",
        "b.jsonl:13: duplicate custom_id 'ok' (first at line 1)",
        "b.jsonl:14: missing field custom_id",
        "b.jsonl:15: custom_id 'parts': body.messages[0].content must be a string or a list of parts, "
        "found a number",
    ]


def test_unrecognised_jsonl_record():
    (p,) = problems('{"question": "x"}\n{"question": "y"}\n', source="x.jsonl")
    assert p.startswith("x.jsonl:1: not a batch request")


def test_jsonl_with_only_non_objects_and_only_blank_lines():
    assert problems('"a"\n"b"\n', source="x.jsonl") == ["x.jsonl:1: expected a JSON object, found a string"]
    assert problems("\n\n \n", source="x.jsonl")[0].endswith("the file is empty: no prompts")


def test_many_problems_are_capped_with_a_count():
    text = "\n".join(json.dumps({"id": f"i{n}", "prompt": ""}) for n in range(30))
    got = problems(text, source="p.jsonl")
    assert len(got) == MAX_PROBLEMS_SHOWN + 1
    assert got[-1] == "... and 10 more problems"


# -- files -----------------------------------------------------------------------------------------

def test_load_reads_files_and_reports_missing_and_non_utf8(tmp_path):
    path = tmp_path / "input_prompts.json"
    path.write_text(SEED, encoding="utf-8")
    assert load_batch_input(path).format == "seed"
    with pytest.raises(R1Error, match="no such file"):
        load_batch_input(tmp_path / "missing.json")
    with pytest.raises(R1Error, match="is a directory"):
        load_batch_input(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "\xff"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: not UTF-8"):
        load_batch_input(bad)
