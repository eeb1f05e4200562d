"""The help screen (? / F1): packaged Markdown plus the live bindings of the screen below."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


def help_text() -> str:
    return files("r1console.tui").joinpath("help.md").read_text(encoding="utf-8")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        below = self.app.screen_stack[-1] if self.app.screen_stack else None
        keys = []
        if below is not None:
            for binding in below.BINDINGS:
                if isinstance(binding, Binding) and binding.description:
                    keys.append(f"| `{binding.key}` | {binding.description} | `{binding.id or ''}` |")
        table = "\n".join(["| key | action | binding id |", "|---|---|---|", *keys]) if keys else ""
        with VerticalScroll(id="help-body"):
            yield Markdown(help_text() + ("\n\n## Keys on this screen\n\n" + table if table else ""))
