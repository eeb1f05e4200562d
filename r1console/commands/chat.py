"""``r1console chat``: talk to the deployed model from the terminal.

    r1console chat --url http://127.0.0.1:8000 [--api-key-file F] "What is 2+2?"
    r1console chat --job 12345 --json "What is 2+2?"
    r1console chat --url http://127.0.0.1:8000 --export talk.md          # interactive

With a PROMPT: one request; the reasoning streams dimmed, then the answer; a summary line
(finish reason, tokens, first token / first answer token / total time) goes to stderr.
``--json`` prints one object instead: {reasoning, content, usage, finish_reason, ttft_s,
ttfot_s, e2e_s, model}. Without PROMPT: a line-based conversation that keeps its history
(/help lists the commands; Ctrl-C stops a reply, Ctrl-D quits). ``--export FILE.md`` writes the
conversation as Markdown when the command ends, however it ends.

``--url`` reaches any OpenAI-compatible server. ``--job JOBID`` asks the cluster layer
(``r1console.adapters.reach.open_server``) for a forwarded URL and the job's API key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from r1console.commands._common import (
    add_target_args,
    non_negative_float,
    open_job_server,
    positive_float,
    positive_int,
    read_api_key_file,
)
from r1console.core.api_errors import StreamInterrupted
from r1console.core.chat import ChatSession, Turn, TurnState
from r1console.core.errors import R1Error
from r1console.core.streaming import ChatResult, StreamDelta
from r1console.core.turn_summary import CLI_STYLE, TurnFacts, summary_line

HELP_TEXT = """\
commands:
  /system [TEXT]   show or set the system prompt (empty TEXT: none)
  /reset           forget the conversation (the system prompt stays)
  /undo            drop the last exchange
  /reasoning       show / hide the reasoning
  /export FILE.md  write the conversation as Markdown now
  /quit            leave (so does Ctrl-D); Ctrl-C stops a reply that is streaming"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk to the model: reasoning (dimmed), then the answer; --json for scripts",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_args(parser)
    parser.add_argument("--system", metavar="TEXT", help="system prompt")
    parser.add_argument("--max-tokens", type=positive_int, metavar="N",
                        help="most tokens to generate, reasoning included (default: the server's)")
    parser.add_argument("--temperature", type=non_negative_float, metavar="T", help="sampling temperature")
    parser.add_argument("--top-p", type=positive_float, metavar="P", help="nucleus sampling")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per reply instead of streaming text")
    parser.add_argument("--hide-reasoning", action="store_true", help="do not print the reasoning")
    parser.add_argument("--export", metavar="FILE.md", help="write the conversation as Markdown at the end")
    parser.add_argument("--export-reasoning", action=argparse.BooleanOptionalAction, default=True,
                        help="include the reasoning in --export (default: yes)")
    parser.add_argument("prompt", nargs="?", metavar="PROMPT",
                        help="the message ('-' reads it from stdin); without it, an interactive conversation")
    parser.set_defaults(func=run)


# -- entry ------------------------------------------------------------------------------------

def _check_export_path(path: str | None) -> Path | None:
    if not path:
        return None
    out = Path(path).expanduser()
    if out.is_dir():
        raise R1Error(f"--export {path} is a directory; give a file name such as chat.md")
    if not out.parent.is_dir():
        raise R1Error(f"--export {path}: the directory {out.parent} does not exist")
    return out


def _read_prompt(prompt: str | None) -> str | None:
    if prompt != "-":
        if prompt is not None and not prompt.strip():
            raise R1Error("the prompt is empty")
        return prompt
    text = sys.stdin.read()
    if not text.strip():
        raise R1Error("the prompt read from stdin is empty")
    return text


async def run(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args.prompt)
    export = _check_export_path(args.export)
    key = read_api_key_file(args.api_key_file) if args.api_key_file else None
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p}
    session = ChatSession(args.system, model=args.model,
                          params={k: v for k, v in params.items() if v is not None})
    try:
        if args.job:
            async with open_job_server(args.job, args.cluster) as (url, job_key):
                return await _converse(url, key or job_key, session, prompt, args)
        return await _converse(args.url, key, session, prompt, args)
    finally:
        if export is not None and session.turns:
            write_export(session, export, include_reasoning=args.export_reasoning)


def write_export(session: ChatSession, path: Path, *, include_reasoning: bool) -> None:
    """Write the Markdown export atomically (a crash never leaves half a file)."""
    text = session.export_markdown(include_reasoning=include_reasoning)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise R1Error(f"cannot write {path}: {err.strerror or err}") from None
    print(f"r1console: conversation written to {path}", file=sys.stderr)


async def _converse(url: str, key: str | None, session: ChatSession, prompt: str | None,
                    args: argparse.Namespace) -> int:
    from r1console.adapters.vllm_client import VllmClient

    view = TerminalView(json_mode=args.json, show_reasoning=not args.hide_reasoning)
    async with VllmClient(url, key, stream_timeout=args.timeout) as client:
        if session.model is None:
            session.model = await client.model_id()  # also checks the URL and the key early
        if prompt is not None:
            return await _one_turn(client, session, prompt, view)
        return await _interactive(client, session, view, args)


async def _one_turn(client, session: ChatSession, text: str, view: TerminalView) -> int:
    from r1console.adapters.chat_runner import run_turn

    view.begin()
    try:
        turn = await run_turn(client, session, text, on_delta=view.on_delta)
    except asyncio.CancelledError:
        view.end_cancelled(session.turns[-1])
        raise
    except R1Error as err:
        view.end_failed(session.turns[-1] if session.turns else None, err)
        raise
    view.end(turn)
    return 0


# -- interactive ------------------------------------------------------------------------------

async def _ainput(prompt: str) -> str | None:
    """One line from stdin without blocking the event loop; None at end of input. A daemon
    thread, so a pending read never keeps the process alive at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            line: str | None = input(prompt) if sys.stdin.isatty() else sys.stdin.readline()
            if line == "" and not sys.stdin.isatty():
                line = None
        except EOFError:
            line = None
        except BaseException as err:  # pragma: no cover - closed stdin and the like
            loop.call_soon_threadsafe(lambda e=err: future.done() or future.set_exception(e))
            return
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))

    threading.Thread(target=read, name="r1console-chat-input", daemon=True).start()
    return await future


@contextlib.contextmanager
def _sigint_cancels(task: asyncio.Task):
    """While a reply streams, Ctrl-C cancels just that reply (not the conversation)."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread / platform
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)


async def _interactive(client, session: ChatSession, view: TerminalView, args: argparse.Namespace) -> int:
    from r1console.adapters.chat_runner import run_turn

    tty = sys.stdin.isatty()
    view.note(f"chatting with {session.model} at {client.base_url}"
              + (" — /help for commands, Ctrl-D to quit" if tty else ""))
    failures = 0
    while True:
        line = await _ainput("you> " if tty else "")
        if line is None:
            break
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("/"):
            if _command(line, session, view, args):
                break
            continue
        view.begin()
        task = asyncio.ensure_future(run_turn(client, session, line, on_delta=view.on_delta))
        try:
            with _sigint_cancels(task):
                turn = await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we were cancelled ourselves
            view.end_cancelled(session.turns[-1])
            continue
        except R1Error as err:
            view.end_failed(session.turns[-1] if session.turns else None, err)
            view.error(err)
            failures += 1
            continue
        view.end(turn)
    succeeded = any(t.state is TurnState.DONE for t in session.turns)
    return 1 if failures and not succeeded else 0


def _command(line: str, session: ChatSession, view: TerminalView, args: argparse.Namespace) -> bool:
    """Run one /command; True means quit."""
    name, _, rest = line.partition(" ")
    rest = rest.strip()
    if name in ("/quit", "/exit", "/q"):
        return True
    if name == "/help":
        view.note(HELP_TEXT)
    elif name == "/system":
        if rest:
            session.set_system_prompt(rest)
            view.note("system prompt set")
        elif line.strip() == "/system":
            view.note(f"system prompt: {session.system_prompt!r}" if session.system_prompt else "no system prompt")
    elif name == "/reset":
        session.reset()
        view.note("conversation cleared")
    elif name == "/undo":
        dropped = session.undo()
        view.note("dropped the last exchange" if dropped else "nothing to drop")
    elif name == "/reasoning":
        view.show_reasoning = not view.show_reasoning
        view.note("reasoning shown" if view.show_reasoning else "reasoning hidden")
    elif name == "/export":
        if not rest:
            view.note("usage: /export FILE.md")
        else:
            try:
                path = _check_export_path(rest)
                write_export(session, path, include_reasoning=args.export_reasoning)
            except R1Error as err:
                view.error(err)
    else:
        view.note(f"unknown command {name}; /help lists them")
    return False


# -- terminal output --------------------------------------------------------------------------

class TerminalView:
    """Streams a reply to the terminal: reasoning dimmed, a blank line, the answer; a summary
    on stderr. In JSON mode it prints one object per reply and nothing else on stdout."""

    def __init__(self, *, json_mode: bool, show_reasoning: bool) -> None:
        from rich.console import Console

        self.json_mode = json_mode
        self.show_reasoning = show_reasoning
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True, emoji=False, markup=False)
        self._printed_reasoning = False
        self._printed_content = False

    def begin(self) -> None:
        self._printed_reasoning = False
        self._printed_content = False

    def on_delta(self, turn: Turn, delta: StreamDelta) -> None:
        if self.json_mode:
            return
        if delta.reasoning and self.show_reasoning:
            text = delta.reasoning.lstrip("\n") if not self._printed_reasoning else delta.reasoning
            if text:
                self.out.print(text, style="dim", end="")
                self._printed_reasoning = True
        if delta.content:
            text = delta.content
            if not self._printed_content:
                text = text.lstrip()
                if not text:
                    return
                if self._printed_reasoning:
                    self.out.print("\n")  # the reasoning's line, then one blank line
            self.out.print(text, end="")
            self._printed_content = True

    def _close_text(self) -> None:
        if self._printed_reasoning or self._printed_content:
            self.out.print()

    def end(self, turn: Turn) -> None:
        result = turn.result
        if self.json_mode:
            self._json(result)
            return
        self._close_text()
        self.err.print(f"[{_summary(result)}]", style="dim")
        if result.finish_reason == "length":
            if not (result.content or "").strip():
                self.warn("the reply hit the token limit while still reasoning: no answer "
                          "(raise --max-tokens)")
            else:
                self.warn("the answer was cut by the token limit (finish_reason length)")
        elif not (result.content or "").strip():
            self.warn("the model gave no answer")

    def end_failed(self, turn: Turn | None, err: R1Error) -> None:
        """A reply that broke off: in JSON mode the partial reply is still printed (with
        ``error``) when something arrived; the error itself goes to stderr."""
        if self.json_mode:
            if isinstance(err, StreamInterrupted) and turn is not None:
                self._json(turn.result, error=err.message)
        else:
            self._close_text()
            self._printed_reasoning = self._printed_content = False

    def end_cancelled(self, turn: Turn) -> None:
        if self.json_mode:
            self._json(turn.result, error="cancelled")
        else:
            self._close_text()
            self.err.print("[reply stopped]", style="dim")

    def _json(self, result: ChatResult, error: str | None = None) -> None:
        doc: dict[str, Any] = result.to_json()
        if error is not None:
            doc["error"] = error
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        self.err.print(text, style="dim")

    def warn(self, text: str) -> None:
        print(f"r1console: warning: {text}", file=sys.stderr)

    def error(self, err: R1Error) -> None:
        print(f"r1console: error: {err}", file=sys.stderr)


def _summary(r: ChatResult) -> str:
    return summary_line(TurnFacts.of_result(r), CLI_STYLE)
