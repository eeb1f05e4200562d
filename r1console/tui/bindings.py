"""Every key binding with an id, in one table: what a user's ``keymap`` may name.

The ids are collected from the screens' and widgets' ``BINDINGS``; an id means one key set
(``back`` is shared by the screens that leave with escape). :func:`validate_keymap` checks a
user config's ``keymap`` against them, with a did-you-mean, before the app starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from textual.binding import Binding, BindingType

from r1console.core.errors import ConfigError


def _owners() -> list[type]:
    from r1console.tui.app import R1ConsoleApp
    from r1console.tui.screens import batch, chat, dialogs, help, job, jobs, launch, welcome
    from r1console.tui.widgets.log_view import LogView

    return [R1ConsoleApp, batch.BatchScreen, chat.ChatScreen, job.JobScreen, jobs.JobsScreen, launch.LaunchScreen,
            welcome.WelcomeScreen, help.HelpScreen, LogView,
            *(obj for obj in vars(dialogs).values() if isinstance(obj, type) and "BINDINGS" in vars(obj))]


def _bindings(owner: type) -> Iterable[Binding]:
    items: list[BindingType] = list(vars(owner).get("BINDINGS", []))
    for item in items:
        if isinstance(item, Binding):
            yield item


def bindings_by_id() -> dict[str, list[tuple[str, Binding]]]:
    """Binding id -> [(owner class name, binding)] for every binding that has an id."""
    table: dict[str, list[tuple[str, Binding]]] = {}
    for owner in _owners():
        for binding in _bindings(owner):
            if binding.id:
                table.setdefault(binding.id, []).append((owner.__name__, binding))
    return table


def binding_ids() -> list[str]:
    return sorted(bindings_by_id())


def validate_keymap(keymap: Mapping[str, str], *, where: str = "config") -> None:
    """ConfigError naming each unknown binding id (with a did-you-mean) or empty key."""
    known = binding_ids()
    problems = []
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, known, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            problems.append(f"{where}: keymap: unknown binding id `{binding_id}`{hint}")
        elif not str(keys).strip():
            problems.append(f"{where}: keymap: `{binding_id}` has no keys")
    if problems:
        raise ConfigError(problems, hint=f"binding ids: {', '.join(known)}")
