"""Binding ids: one key set per id, and a user keymap naming an unknown id is refused with a did-you-mean."""

from __future__ import annotations

import pytest

from r1console.core.errors import ConfigError
from r1console.core.userconfig import UserConfig
from r1console.tui.bindings import binding_ids, bindings_by_id, validate_keymap
from r1console.tui.factory import make_app


def test_each_binding_id_means_one_key_set_and_one_action():
    table = bindings_by_id()
    assert {"cancel-job", "log-next", "log-follow", "back", "help"} <= set(table)
    for binding_id, uses in table.items():
        keys = {b.key for _owner, b in uses}
        assert len(keys) == 1, f"{binding_id} is bound to several key sets: {uses}"
        owners = [owner for owner, _b in uses]
        assert len(owners) == len(set(owners)), f"{binding_id} bound twice in one class: {owners}"


def test_log_navigation_is_bound_once():
    for binding_id in ("log-next", "log-previous", "log-follow"):
        assert [owner for owner, _b in bindings_by_id()[binding_id]] == ["JobScreen"]
    assert not {"log-next-match", "log-previous-match", "log-follow-end"} & set(binding_ids())


def test_known_keymap_ids_pass():
    validate_keymap({"cancel-job": "ctrl+k", "log-next": "j"})


def test_unknown_keymap_id_is_a_config_error_with_did_you_mean():
    with pytest.raises(ConfigError) as info:
        validate_keymap({"cancel-jbo": "ctrl+k", "log-next": " "}, where="/home/a/config.yaml")
    assert info.value.problems == [
        "/home/a/config.yaml: keymap: unknown binding id `cancel-jbo`; did you mean `cancel-job`?",
        "/home/a/config.yaml: keymap: `log-next` has no keys",
    ]
    assert "binding ids: " in (info.value.hint or "")


def test_make_app_refuses_a_bad_keymap():
    with pytest.raises(ConfigError):
        make_app(UserConfig(keymap={"no-such-action": "x"}))
    make_app(UserConfig(keymap={"quit": "ctrl+x"}))
