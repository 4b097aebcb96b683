"""The one error the CLI reports: a message on one line, and a non-zero exit code."""


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
