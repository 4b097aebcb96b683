"""One worker process of a batch job: runs the scoring script's ``init()`` once, then its
``run(mini_batch)`` for each mini-batch of files the coordinator sends, as Azure's batch
deployments do.

Command line (build it with :func:`dataplane.batch.command.driver_command`)::

    python -m dataplane.batch.driver (--script <path> | --mlflow) --output <dir>
        --control-fd <n> --event-fd <m> --process-name <name> -- <the script's arguments>

The process runs in the deployment's environment with the code directory as its working
directory. The script sees ``sys.argv == [<script path>, <the arguments after -->]``
(``--logging_level``, ``--output_action``... as Azure's ParallelRunStep passes them); the
driver reads ``--logging_level`` and ``--output_action`` from them too. ``--mlflow`` scores an
MLflow model without a script (:mod:`dataplane.batch.mlflow_score`).

The coordinator talks to the driver over two inherited pipes, never over stdout or stderr,
which belong to the user's code (and this module's one line per mini-batch on stderr). Both
carry JSON objects, one per line:

- events (``--event-fd``): ``{"event": "ready"}`` once ``init()`` has returned, or
  ``{"event": "init_failed", "error": <traceback>}`` and exit status 1; then for each
  mini-batch ``{"event": "done", "index": i, "items": <rows>, "seconds": <float>}`` or
  ``{"event": "failed", "index": i, "error": <traceback or message>}``.
- commands (``--control-fd``): ``{"index": i, "files": [<absolute paths>], "part": <path>}``
  scores one mini-batch (``part`` is required, and unused with ``summary_only``).
  ``{"stop": true}``, or the end of the pipe, calls ``shutdown()`` if the script defines one
  and exits with status 0 (1 if shutdown() raised). A line that is not a command exits with
  status 2, as do wrong arguments (before any event).

A mini-batch fails when run() raises or returns None (Azure: "No succeeded mini batch item
returned from run()") or something other than a list, tuple or pandas DataFrame; the process
goes on with the next command. With ``append_row`` (the default output action) the results are
written to ``<part>.tmp`` and renamed to ``part``, so a part exists only whole: a DataFrame as
its rows of space-separated values without header or index, a list one line per element
(``str()`` of it). With ``summary_only`` nothing is written: the script writes its own files
under AZUREML_BI_OUTPUT_PATH. Timeouts are the coordinator's: it kills the process.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType, TracebackType

APPEND_ROW, SUMMARY_ONLY = "append_row", "summary_only"
NO_RESULT = (
    "No succeeded mini batch item returned from run(): it returned None. run() must return "
    "a list or a pandas DataFrame."
)

log = logging.getLogger("weir.batch")


class ProtocolError(Exception):
    """A control line that is not a command: the coordinator and the driver disagree."""


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str], argparse.Namespace]:
    """The driver's own arguments, the script's (after ``--``), and the ones of the script's
    the driver reads itself."""
    own, script_args = argv, []
    if "--" in argv:
        own, script_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(prog="python -m dataplane.batch.driver", allow_abbrev=False)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--script", help="the scoring script")
    source.add_argument("--mlflow", action="store_true", help="score an MLflow model")
    parser.add_argument("--output", required=True, help="the job's output folder")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--event-fd", type=int, required=True)
    parser.add_argument("--process-name", required=True)
    args = parser.parse_args(own)
    # The script's own parser is the script's business; these two are the driver's too.
    # Without abbreviations: --output would be taken for --output_action.
    shared = argparse.ArgumentParser(prog="the script's arguments", allow_abbrev=False)
    shared.add_argument("--logging_level", default="INFO")
    shared.add_argument("--output_action", default=APPEND_ROW, choices=(APPEND_ROW, SUMMARY_ONLY))
    settings, _ = shared.parse_known_args(script_args)
    return args, script_args, settings


class Events:
    """The event pipe: one JSON object per line, flushed at once (the coordinator waits on it)."""

    def __init__(self, fd: int):
        self.stream = os.fdopen(fd, "w", encoding="utf-8")

    def send(self, **event) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()


def commands(fd: int):
    """The control pipe's commands, until ``{"stop": true}`` or end of file."""
    with os.fdopen(fd, "r", encoding="utf-8") as control:
        for line in control:
            if not line.strip():
                continue
            try:
                command = json.loads(line)
            except ValueError:
                raise ProtocolError(f"not JSON: {line.strip()[:200]}") from None
            if isinstance(command, dict) and command.get("stop") is True:
                return
            if not (
                isinstance(command, dict)
                and isinstance(command.get("index"), int)
                and isinstance(command.get("files"), list)
                and all(isinstance(path, str) for path in command["files"])
                and isinstance(command.get("part"), str)
            ):
                raise ProtocolError(f"not a command: {line.strip()[:200]}")
            yield command


def load_script(path: str) -> ModuleType:
    """Import the scoring script by its path, named after its file as Azure does, with its
    folder first on sys.path (scripts import the modules beside them)."""
    script = Path(path).resolve()
    sys.path.insert(0, str(script.parent))
    spec = importlib.util.spec_from_file_location(script.stem, script)
    if spec is None:
        raise ImportError(f"{script} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[script.stem] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{script.name} does not define run(mini_batch)")
    return module


def score(module: ModuleType, files: list[str], part: str, output_action: str) -> int:
    """Run the script over ``files`` and keep its result; the number of items it returned."""
    result = module.run(files)
    if result is None:
        raise ValueError(NO_RESULT)
    pandas = sys.modules.get("pandas")  # a DataFrame comes with pandas imported
    is_frame = pandas is not None and isinstance(result, pandas.DataFrame)
    if not (is_frame or isinstance(result, (list, tuple))):
        raise TypeError(
            f"run() returned a {type(result).__name__}: it must return a list or a pandas DataFrame"
        )
    if output_action == APPEND_ROW:
        if is_frame:
            text = result.to_csv(sep=" ", header=False, index=False)
        else:
            text = "".join(f"{element}\n" for element in result)
        write_atomically(Path(part), text)
    return len(result)


def write_atomically(part: Path, text: str) -> None:
    """Write ``part`` whole or not at all: a process killed while writing leaves a .tmp the
    next attempt overwrites, never a part the coordinator would take as done."""
    part.parent.mkdir(parents=True, exist_ok=True)
    temporary = part.with_name(part.name + ".tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, part)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` from the user's code on, without this module's frames nor
    those of the import machinery that ran the script."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__
        or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def configure_logging(level: str) -> None:
    """The driver's lines go to stderr whatever the script does with logging. The user's
    logging goes to stderr too, at the level Azure passes as --logging_level: a script that
    only sets its logger's level (as Azure's docs show) is heard."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    named = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=named if isinstance(named, int) else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> int:
    args, script_args, settings = parse_arguments(sys.argv[1:] if argv is None else argv)
    name = args.process_name
    # The user's output goes to log files line by line, in order with the driver's lines.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    configure_logging(settings.logging_level)
    # Subprocesses the script starts must not hold the pipes open: the coordinator sees a
    # killed driver by the end of its event pipe.
    for fd in (args.control_fd, args.event_fd):
        os.set_inheritable(fd, False)
    events = Events(args.event_fd)
    os.environ.setdefault("AZUREML_BI_OUTPUT_PATH", args.output)

    started = time.monotonic()
    try:
        if args.mlflow:
            sys.argv = [str(Path(__file__).with_name("mlflow_score.py")), *script_args]
            module = importlib.import_module("dataplane.batch.mlflow_score")
        else:
            sys.argv = [str(Path(args.script).resolve()), *script_args]
            module = load_script(args.script)
        init = getattr(module, "init", None)
        if callable(init):
            init()
    except BaseException as exc:  # SystemExit too: an argparse error in the script, say
        error = user_traceback(exc)
        log.error("%s: init failed:\n%s", name, error.rstrip())
        events.send(event="init_failed", error=error)
        return 1
    log.info("%s: ready in %.2f s", name, time.monotonic() - started)
    events.send(event="ready")

    try:
        for command in commands(args.control_fd):
            index, files = command["index"], command["files"]
            started = time.monotonic()
            try:
                items = score(module, files, command["part"], settings.output_action)
            except (Exception, SystemExit) as exc:
                seconds = time.monotonic() - started
                error = user_traceback(exc)
                log.error(
                    "%s: mini-batch %d: %d file(s) failed after %.2f s:\n%s",
                    name,
                    index,
                    len(files),
                    seconds,
                    error.rstrip(),
                )
                events.send(event="failed", index=index, error=error)
                continue
            seconds = time.monotonic() - started
            log.info(
                "%s: mini-batch %d: %d file(s) -> %d item(s) in %.2f s",
                name,
                index,
                len(files),
                items,
                seconds,
            )
            events.send(event="done", index=index, items=items, seconds=round(seconds, 3))
    except ProtocolError as exc:
        log.error("%s: stopping: the control pipe sent %s", name, exc)
        return 2

    shutdown = getattr(module, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except BaseException as exc:
            log.error("%s: shutdown() failed:\n%s", name, user_traceback(exc).rstrip())
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
