"""Errors a provisioning step raises to end its operation Failed with an ARM error."""


class PermanentError(Exception):
    """A failure that retrying cannot fix; it ends the operation Failed with this error."""

    def __init__(self, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        # ARM error details are error objects; plain lines of output become one of them.
        objects = [d for d in details or [] if isinstance(d, dict)]
        lines = [str(d) for d in details or [] if not isinstance(d, dict)]
        if lines:
            objects.append({"code": "Output", "message": "\n".join(lines)})
        self.details = objects


def last_error(output: str) -> str:
    """The line of a tool's or replica's output that says what went wrong: the last one
    naming an error or exception, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]
