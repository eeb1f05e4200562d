"""SSHTransport against real SSH servers (asyncssh) on 127.0.0.1: prompts, host keys, ProxyJump,
reconnect and forwards. The cluster-level behaviour (OpenSSH sshd, SLURM) is in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
import shlex

import asyncssh
import pytest

from r1console.adapters.ssh_transport import SSHTransport
from r1console.adapters.transport import Prompt, TransportError
from r1console.core.userconfig import ClusterSpec


class _Server(asyncssh.SSHServer):
    """A login that needs keyboard-interactive (password + one-time code), or a plain password."""

    def __init__(self, mode: str, conns: list):
        self.mode = mode
        self.conns = conns

    def connection_made(self, conn):
        self.conns.append(conn)

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return self.mode == "password"

    def validate_password(self, username, password):
        return password == "pw"

    def kbdint_auth_supported(self):
        return self.mode == "kbdint"

    def get_kbdint_challenge(self, username, lang, submethods):
        return "Two-factor login", "Enter your password, then the code from your phone.", "", \
            [("Password: ", False), ("Verification code: ", True)]

    def validate_kbdint_response(self, username, responses):
        return list(responses) == ["pw", "123456"]

    def connection_requested(self, dest_host, dest_port, orig_host, orig_port):
        return True  # allow direct-tcpip (port forwards, ProxyJump)


async def _exec(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write(f"ran: {process.command}\n")
    process.exit(0)


@contextlib.asynccontextmanager
async def ssh_server(mode: str = "kbdint"):
    key = asyncssh.generate_private_key("ssh-ed25519")
    conns: list = []
    server = await asyncssh.create_server(lambda: _Server(mode, conns), "127.0.0.1", 0, server_host_keys=[key],
                                          process_factory=_exec)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, key, conns
    finally:
        server.close()
        await server.wait_closed()


def known_hosts(tmp_path, *entries) -> str:
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"[127.0.0.1]:{port} {key.export_public_key().decode()}" for port, key in entries))
    return str(path)


def spec(tmp_path, port, kh, **kw) -> ClusterSpec:
    config = tmp_path / "ssh_config"
    if not config.exists():
        config.write_text("")  # isolate from the machine's ~/.ssh/config
    return ClusterSpec(name="c", ssh_host="127.0.0.1", port=port, user="alice", known_hosts=kh,
                       ssh_config=str(config), **kw)


class Recorder:
    def __init__(self, answers):
        self.answers = answers
        self.calls: list[tuple[str, str, list[Prompt]]] = []

    async def __call__(self, title, instructions, prompts):
        self.calls.append((title, instructions, prompts))
        return self.answers


async def test_two_factor_prompts_go_to_the_callback(tmp_path):
    async with ssh_server("kbdint") as (port, key, _):
        prompt = Recorder(["pw", "123456"])
        async with SSHTransport(spec(tmp_path, port, known_hosts(tmp_path, (port, key))), prompt) as tr:
            result = await tr.run(["echo", "a b"])
        outer = shlex.split(result.stdout.removeprefix("ran: "))
        assert outer[:3] == ["exec", "/bin/sh", "-c"]                  # the login shell only execs sh
        assert outer[3].endswith("echo 'a b'")  # every argv element shlex-quoted
        [(title, instructions, prompts)] = prompt.calls
        assert title == "Two-factor login" and "code from your phone" in instructions
        assert prompts == [Prompt("Password: ", False), Prompt("Verification code: ", True)]


async def test_wrong_answers_or_no_terminal_are_a_clear_refusal(tmp_path):
    async with ssh_server("kbdint") as (port, key, _):
        kh = known_hosts(tmp_path, (port, key))
        with pytest.raises(TransportError, match="was refused"):
            await SSHTransport(spec(tmp_path, port, kh), Recorder(["pw", "000000"])).connect()
        with pytest.raises(TransportError, match="was refused"):
            await SSHTransport(spec(tmp_path, port, kh), prompt=None).connect()  # never hangs waiting


async def test_password_prompt(tmp_path):
    async with ssh_server("password") as (port, key, _):
        prompt = Recorder(["pw"])
        async with SSHTransport(spec(tmp_path, port, known_hosts(tmp_path, (port, key))), prompt) as tr:
            assert (await tr.run(["true"])).ok
        assert [c[2] for c in prompt.calls] == [[Prompt("Password for alice@127.0.0.1: ", False)]]


async def test_unknown_and_changed_host_keys_are_refused(tmp_path):
    async with ssh_server("password") as (port, key, conns):
        empty = tmp_path / "empty"
        empty.write_text("")
        with pytest.raises(TransportError, match="is unknown .*never accepts a host key"):
            await SSHTransport(spec(tmp_path, port, str(empty)), Recorder(["pw"])).connect()
        other = asyncssh.generate_private_key("ssh-ed25519")
        with pytest.raises(TransportError, match="has CHANGED"):
            await SSHTransport(spec(tmp_path, port, known_hosts(tmp_path, (port, other))), Recorder(["pw"])).connect()


async def test_user_known_hosts_file_none_is_refused(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host lab\n  HostName 127.0.0.1\n  UserKnownHostsFile none\n")
    tr = SSHTransport(ClusterSpec(name="lab", ssh_host="lab", ssh_config=str(config)))
    with pytest.raises(TransportError, match="UserKnownHostsFile none"):
        await tr.connect()


async def test_proxyjump_verifies_every_hop(tmp_path):
    async with ssh_server("password") as (jump_port, jump_key, _), ssh_server("password") as (port, key, _):
        config = tmp_path / "ssh_config"
        both = known_hosts(tmp_path, (jump_port, jump_key), (port, key))
        config.write_text(f"Host jump\n  HostName 127.0.0.1\n  Port {jump_port}\n  User bob\n"
                          f"  UserKnownHostsFile {both}\n"
                          f"Host target\n  HostName 127.0.0.1\n  Port {port}\n  User alice\n  ProxyJump jump\n"
                          f"  UserKnownHostsFile {both}\n")
        prompt = Recorder(["pw"])
        async with SSHTransport(ClusterSpec(name="t", ssh_host="target", ssh_config=str(config)), prompt) as tr:
            assert (await tr.run(["hostname"])).ok
            assert len(tr.client_ports()) == 1  # one TCP connection: the target rides inside the hop
        assert [c[2][0].text for c in prompt.calls] == ["Password for bob@jump: ", "Password for alice@target: "]
        only_target = tmp_path / "only_target"
        only_target.write_text(f"[127.0.0.1]:{port} {key.export_public_key().decode()}")
        config.write_text(config.read_text().replace(both, str(only_target)))
        with pytest.raises(TransportError, match="host key of jump"):
            await SSHTransport(ClusterSpec(name="t", ssh_host="target", ssh_config=str(config)), prompt).connect()


async def test_reconnects_after_a_drop_and_forwards_survive_it(tmp_path):
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = echo_server.sockets[0].getsockname()[1]
    try:
        async with ssh_server("password") as (port, key, conns):
            async with SSHTransport(spec(tmp_path, port, known_hosts(tmp_path, (port, key))), Recorder(["pw"])) as tr:
                forward = await tr.forward_local_port("127.0.0.1", echo_port)
                assert forward.local_host == "127.0.0.1"

                async def roundtrip(data: bytes) -> bytes:
                    reader, writer = await asyncio.open_connection(forward.local_host, forward.local_port)
                    writer.write(data)
                    await writer.drain()
                    got = await reader.read(100)
                    writer.close()
                    return got

                assert await roundtrip(b"one") == b"one"
                for conn in list(conns):
                    conn.abort()  # the server side drops every connection
                await asyncio.sleep(0.1)
                assert (await tr.run(["uptime"])).ok  # reconnected transparently
                assert await roundtrip(b"two") == b"two"  # same local port, new SSH connection
                assert tr.stats.connects == 2 and tr.stats.reconnects == 1
                await forward.close()
    finally:
        echo_server.close()
        await echo_server.wait_closed()
