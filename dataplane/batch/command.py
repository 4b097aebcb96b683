"""The batch driver's command line, as the coordinator starts each of its processes."""

from __future__ import annotations

# The REST API's spellings of a deployment's outputAction, and the ones scripts see in argv
# (Azure's ParallelRunStep passes the latter).
OUTPUT_ACTIONS = {"AppendRow": "append_row", "SummaryOnly": "summary_only"}


def driver_command(
    python,
    script,
    output_dir,
    control_fd,
    event_fd,
    process_name,
    logging_level,
    output_action,
    append_row_file_name,
    mini_batch_size,
    error_threshold,
    run_invocation_timeout,
    process_count_per_node,
    mlflow=False,
) -> list[str]:
    """``python -m dataplane.batch.driver`` running ``script`` (an absolute path; None with
    ``mlflow``, an MLflow model scored without a script), reading commands from the
    inherited file descriptor ``control_fd`` and writing events to ``event_fd`` (pass both
    with ``pass_fds``). The arguments after ``--`` become the script's ``sys.argv[1:]``, the
    ones Azure's ParallelRunStep passes; ``output_action`` may be spelled as in the REST API
    (``AppendRow``) or as in argv (``append_row``)."""
    command = [python, "-m", "dataplane.batch.driver"]
    if not mlflow:
        command += ["--script", str(script)]
    command += ["--output", str(output_dir)]
    command += ["--control-fd", str(control_fd), "--event-fd", str(event_fd)]
    command += ["--process-name", process_name]
    if mlflow:
        command.append("--mlflow")
    command += [
        "--",
        "--logging_level",
        logging_level,
        "--output",
        str(output_dir),
        "--output_action",
        OUTPUT_ACTIONS.get(output_action, output_action),
        "--append_row_file_name",
        append_row_file_name,
        "--mini_batch_size",
        str(mini_batch_size),
        "--error_threshold",
        str(error_threshold),
        "--run_invocation_timeout",
        str(run_invocation_timeout),
        "--process_count_per_node",
        str(process_count_per_node),
    ]
    return command
