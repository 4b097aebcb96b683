"""The inference server's command line, as every backend and tool starts a replica."""

from __future__ import annotations

# The scoring script of MLflow models deployed without one, relative to the directory that
# holds the ``dataplane`` package (the clone on this machine, the server's copy in an image).
MLFLOW_SCRIPT = "dataplane/inference/scripts/mlflow_score.py"


def server_command(
    *,
    entry_script: str,
    model_dir: str,
    port: int | str | None = None,
    socket: str | None = None,
    python: str = "python",
    host: str | None = None,
    concurrency: int | None = None,
) -> list[str]:
    """``python -m dataplane.inference`` serving ``entry_script`` on ``port`` or on the Unix
    socket ``socket`` (either may be a placeholder such as ``"{socket}"`` that the caller
    fills in)."""
    command = [python, "-m", "dataplane.inference", "--entry-script", entry_script]
    command += ["--model-dir", model_dir]
    if host is not None:
        command += ["--host", host]
    if socket is not None:
        command += ["--socket", socket]
    else:
        command += ["--port", str(port)]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    return command
