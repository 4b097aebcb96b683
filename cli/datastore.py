"""Files on a workspace's datastores (``azureml://datastores/<name>/paths/<path>``), read and
written through the Blob API with the SAS the datastore's ``listSecrets`` gives: local job
inputs go up as Azure's SDK puts them, job outputs come down in Azure's layout."""

from __future__ import annotations

import re
from pathlib import Path

from cli.assets import content_hash
from cli.client import Client
from cli.errors import CliError
from cli.progress import Progress

DEFAULT_DATASTORE = "workspaceblobstore"
UPLOAD_PREFIX = "LocalUpload"
# Progress is shown at each tenth of the files (a line each when not on a terminal).
STEPS = 10
DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$"
)


def container(client: Client, datastore: str = DEFAULT_DATASTORE):
    """The datastore's blob container, with a SAS from listSecrets."""
    path = f"{client.workspace_path()}/datastores/{datastore}"
    properties = client.get(path).get("properties") or {}
    sas = client.call("POST", f"{path}/listSecrets").json().get("sasToken")
    if not sas:
        raise CliError(f"datastore '{datastore}' gave no SAS token (listSecrets)")
    # Path-style (https://host/account/container): Weir's blob server takes it on any host
    # name, where host-style needs <account>.blob.<host> to resolve.
    protocol = properties.get("protocol") or "https"
    account_url = f"{protocol}://{properties['endpoint']}/{properties['accountName']}"
    return client.blob_container(account_url, properties["containerName"], sas)


def parse_uri(uri: str) -> tuple[str, str]:
    """``azureml://datastores/<name>/paths/<path>`` (short or workspace-qualified) ->
    (datastore, path)."""
    match = DATASTORE_URI.match(uri)
    if not match:
        raise CliError(f"'{uri}' is not a datastore URI (azureml://datastores/<name>/paths/...)")
    return match["datastore"], match["path"]


def upload_input(client: Client, local: Path) -> str:
    """Put a local file or folder on the default datastore where Azure's SDK puts job
    inputs (``LocalUpload/<hash>/<name>``), once per content; its datastore URI (a folder's
    ends with /)."""
    if not local.exists():
        raise CliError(f"input {local} does not exist")
    directory = f"{UPLOAD_PREFIX}/{content_hash(local)[:32]}/{local.name}"
    suffix = "/" if local.is_dir() else ""
    uri = f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{directory}{suffix}"
    store = container(client)
    if next(iter(store.list_blobs(name_starts_with=directory + suffix)), None) is not None:
        return uri  # the same content went up before
    files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
    if not files:
        raise CliError(f"input folder {local} holds no files")
    progress = Progress(f"Uploading {local}")
    for count, file in enumerate(files, 1):
        name = f"{directory}/{file.relative_to(local)}" if local.is_dir() else directory
        with file.open("rb") as handle:
            store.upload_blob(name, handle, overwrite=True)
        _step(progress, count, len(files))
    progress.done(f"{len(files)} file(s)")
    return uri


def download(client: Client, uri: str, target: Path, title: str) -> list[Path]:
    """Every blob under a datastore URI (a folder, or one file) into ``target``, keeping
    the paths below it; the files written."""
    datastore, path = parse_uri(uri)
    prefix = path.rstrip("/")
    store = container(client, datastore)
    names = [
        blob.name
        for blob in store.list_blobs(name_starts_with=prefix)
        if blob.name == prefix or blob.name.startswith(prefix + "/") or not prefix
    ]
    progress = Progress(title)
    written = []
    for count, name in enumerate(names, 1):
        relative = name.rsplit("/", 1)[-1] if name == prefix else name[len(prefix) :].lstrip("/")
        destination = target / relative
        if not destination.resolve().is_relative_to(target.resolve()):
            raise CliError(f"blob '{name}' would be written outside {target}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with destination.open("wb") as handle:
            store.download_blob(name).readinto(handle)
        written.append(destination)
        _step(progress, count, len(names))
    progress.done(f"{len(names)} file(s)")
    return written


def _step(progress: Progress, count: int, total: int) -> None:
    if count == total or count % max(1, total // STEPS) == 0:
        progress.update(f"{count}/{total} file(s)")
