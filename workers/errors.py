"""Errors a provisioning step raises to end its operation Failed with an ARM error."""


class PermanentError(Exception):
    """A failure that retrying cannot fix; it ends the operation Failed with this error."""

    def __init__(self, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
