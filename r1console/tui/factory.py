"""The one app factory, used by the CLI (`r1console`, `r1console demo`) and by the tests."""

from __future__ import annotations

from r1console.core.userconfig import ClusterSpec, UserConfig
from r1console.tui.app import R1ConsoleApp, SessionOpener


def cluster_opener(spec: ClusterSpec) -> SessionOpener:
    """Open a real cluster session: one transport (SSH or local), prompts shown as dialogs."""

    async def opener(app: R1ConsoleApp):
        from r1console.adapters.connect import make_transport
        from r1console.adapters.session import ClusterSession

        session = ClusterSession(make_transport(spec, app.prompt), spec)
        await session.connect()
        return session

    return opener


def make_app(config: UserConfig, *, opener: SessionOpener | None = None, open_job: str | None = None) -> R1ConsoleApp:
    """The app for ``config``; a ``keymap`` naming an unknown binding id is a ConfigError here, before it starts."""
    if config.keymap:
        from r1console.core import paths
        from r1console.tui.bindings import validate_keymap

        validate_keymap(config.keymap, where=str(paths.config_file()))
    return R1ConsoleApp(opener, config, open_job=open_job)
