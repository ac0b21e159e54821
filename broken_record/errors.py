"""Errors a user can cause: each carries one line that says what to do."""


class ParrotError(Exception):
    """An expected failure: printed as one line, never as a traceback."""

    exit_code = 2


class ServerError(ParrotError):
    """An inference server could not be started or reached."""


class ConfigError(ParrotError):
    """The configuration file is invalid; `problems` lists every finding."""

    def __init__(self, path, problems):
        self.path = str(path)
        self.problems = list(problems)
        lines = [f"{self.path}: {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class Interrupted(KeyboardInterrupt):
    """Raised from SIGTERM so that cleanup runs exactly as for Ctrl-C."""
