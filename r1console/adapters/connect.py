"""Pick and open the transport for a cluster, and the terminal prompt for the CLI.

``--cluster NAME`` is a cluster from r1console's config, ``local``, or an SSH Host alias
(``UserConfig.cluster`` decides). ``open_transport(spec, prompt)`` returns a connected transport.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

from r1console.adapters.local_transport import LocalTransport
from r1console.adapters.transport import Prompt, PromptCallback, Transport
from r1console.core.userconfig import ClusterSpec


def make_transport(spec: ClusterSpec, prompt: PromptCallback | None = None) -> Transport:
    """The transport for ``spec``, not yet connected."""
    if spec.transport == "local":
        return LocalTransport(label=spec.name or "local", env=spec.env)
    from r1console.adapters.ssh_transport import SSHTransport

    return SSHTransport(spec, prompt)


async def open_transport(spec: ClusterSpec, prompt: PromptCallback | None = None) -> Transport:
    """A connected transport for ``spec``. Raises TransportError with a clear message."""
    transport = make_transport(spec, prompt)
    await transport.connect()
    return transport


async def terminal_prompt(title: str, instructions: str, prompts: list[Prompt]) -> list[str] | None:
    """Ask on the terminal (no echo for secrets). Without a terminal: give up (None), never hang."""
    if not (sys.stdin and sys.stdin.isatty()):
        return None

    def ask() -> list[str]:
        if title:
            print(title, file=sys.stderr)
        if instructions:
            print(instructions, file=sys.stderr)
        answers = []
        for p in prompts:
            if p.echo:
                print(p.text, end="", file=sys.stderr, flush=True)
                answers.append(sys.stdin.readline().rstrip("\n"))
            else:
                answers.append(getpass.getpass(p.text))
        return answers

    try:
        return await asyncio.to_thread(ask)
    except (EOFError, KeyboardInterrupt):
        return None


__all__ = ["make_transport", "open_transport", "terminal_prompt"]
