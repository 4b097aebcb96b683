"""``weir job``: the jobs batch endpoints start, as ``az ml job`` shows, streams, downloads and
cancels them (ARM's ``workspaces/{w}/jobs``, run history for the log, the datastore for the
outputs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import requests

from cli import batch_specs, datastore
from cli.client import Client
from cli.common import client_for, command, finish
from cli.errors import CliError

POLL_SECONDS = 1.0
# The progress log run history lists (Azure's SDK streams user_logs/std_log*.txt).
STREAMED_LOG = "user_logs/std_log.txt"


def job_path(client: Client, name: str) -> str:
    return f"{client.workspace_path()}/jobs/{name}"


def job_show(args):
    client = client_for(args)
    return batch_specs.job_entity(client.get(job_path(client, args.name)))


def job_list(args):
    client = client_for(args)
    jobs = [batch_specs.job_entity(job) for job in client.list(f"{client.workspace_path()}/jobs")]
    return jobs[: args.max_results] if args.max_results else jobs


def job_cancel(args):
    client = client_for(args)
    response = client.call("POST", f"{job_path(client, args.name)}/cancel")
    finish(client, response, f"Canceling job {args.name}", args)
    return None


# ---- stream --------------------------------------------------------------------------------
class LogTail:
    """The new part of the job's progress log at each call: the log is a blob whose SAS URL
    run history gives, read from where the last call stopped."""

    def __init__(self, client: Client):
        self.client = client
        self.offset = 0

    def read(self, details: dict) -> str:
        url = (details.get("logFiles") or {}).get(STREAMED_LOG)
        if not url:
            return ""
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        try:
            # The SAS is the credential: no Authorization header, as Azure's SDK reads it.
            answer = requests.get(url, headers=headers, timeout=30, verify=self.client.verify)
        except requests.RequestException:
            return ""  # read again at the next poll
        if answer.status_code == 206:
            new = answer.content
        elif answer.status_code == 200:
            new = answer.content[self.offset :]
        else:  # 416: nothing new; anything else: read again at the next poll
            return ""
        self.offset += len(new)
        return new.decode("utf-8", errors="replace")


def job_stream(args):
    """Print the job's progress log as it grows until the job ends; an error (exit 1) when
    it failed."""
    client = client_for(args)
    name = client.get(job_path(client, args.name))["name"]
    details_path = f"/history/v1.0{client.workspace_path()}/runs/{name}/details"
    tail = LogTail(client)
    out = sys.stdout
    out.write(f"RunId: {name}\n")
    out.flush()
    while True:
        details = client.get(details_path)
        out.write(tail.read(details))
        out.flush()
        if details.get("status") in batch_specs.TERMINAL_STATUSES:
            break
        time.sleep(POLL_SECONDS)
    # The worker uploads the log's last lines as the job ends: read once more after a poll.
    time.sleep(POLL_SECONDS)
    details = client.get(details_path)
    out.write(tail.read(details))
    status = details.get("status")
    out.write(f"\nExecution Summary\n=================\nRunId: {name}\nStatus: {status}\n")
    out.flush()
    if status == "Failed":
        error = (details.get("error") or {}).get("error") or {}
        code = f"({error['code']}) " if error.get("code") else ""
        raise CliError(f"job {name} failed: {code}{error.get('message', 'no error recorded')}")
    return None


# ---- download ------------------------------------------------------------------------------
def job_download(args):
    """The job's named output into ``<download path>/named-outputs/<name>/`` (Azure's
    layout); the job must have finished."""
    client = client_for(args)
    job = batch_specs.job_entity(client.get(job_path(client, args.name)))
    if job["status"] not in batch_specs.TERMINAL_STATUSES:
        raise CliError(
            f"job {job['name']} is {job['status']}: its outputs can be downloaded once it has "
            f"finished (`weir job stream -n {job['name']}` waits for it)"
        )
    output = job["outputs"].get(args.output_name)
    if not output or not output.get("path"):
        known = ", ".join(sorted(job["outputs"])) or "none"
        raise CliError(
            f"job {job['name']} has no output named '{args.output_name}' (its outputs: {known})"
        )
    target = Path(args.download_path) / "named-outputs" / args.output_name
    datastore.download(
        client,
        output["path"],
        target,
        f"Downloading {args.output_name} of {job['name']} to {target}",
    )
    return None


# ---- the parser ----------------------------------------------------------------------------
def add_parsers(groups) -> None:
    job = groups.add_parser("job", help="batch jobs").add_subparsers(dest="command", required=True)
    p = command(job, "show", job_show, "Show a job.")
    p.add_argument("-n", "--name", required=True)
    p = command(job, "list", job_list, "List the workspace's jobs, newest first.")
    p.add_argument("-r", "--max-results", type=int)
    p = command(job, "stream", job_stream, "Print a job's log until it ends.")
    p.add_argument("-n", "--name", required=True)
    p = command(job, "download", job_download, "Download a job's output.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--output-name", default="score")
    p.add_argument("-p", "--download-path", default=".")
    p = command(job, "cancel", job_cancel, "Cancel a job.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--no-wait", action="store_true")
