"""User-facing errors: the CLI prints them as one clear message and exits non-zero, no traceback."""

from __future__ import annotations

# The exit codes of every command, in one table (the README's "Exit codes" section mirrors it).
EXIT_OK = 0
EXIT_ERROR = 1               # a command on the cluster or the server failed
EXIT_USAGE = 2               # bad command line (argparse)
EXIT_DEPLOYMENT_FAILED = 3   # status / log-status / wait: a listed deployment has failed
EXIT_CONFIG = 4              # a profile, config or input file is invalid
EXIT_CLUSTER = 5             # the cluster cannot be reached (SSH, unknown --cluster)
EXIT_INTERRUPTED = 130       # ctrl+c


class R1Error(Exception):
    """An error the user can act on. ``str(err)`` is the whole message."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(R1Error):
    """A profile or config file is invalid. ``problems`` holds one line per problem."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class ClusterError(R1Error):
    """The cluster cannot be chosen or reached (an unknown --cluster name, for one)."""

    exit_code = EXIT_CLUSTER


class RemoteError(R1Error):
    """A command on the cluster failed; carries its own stderr."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, argv: list[str] | None = None, stderr: str = "",
                 returncode: int | None = None, hint: str | None = None) -> None:
        self.argv = argv or []
        self.stderr = stderr
        self.returncode = returncode
        text = message
        if stderr.strip():
            text += "\n" + "\n".join("  " + line for line in stderr.strip().splitlines())
        super().__init__(text, hint=hint)
