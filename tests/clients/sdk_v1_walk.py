"""Azure's SDK v1 (azureml-core) pointed at Weir, as a team moving its v1 scripts writes it:
an authentication class whose cloud is Weir and whose token is a Weir API token, then
``Workspace(...)``, then the model registry: ``Model.register`` of a folder (twice: versions 1
and 2), ``Model(ws, name)``, ``Model(ws, name=, version=)``, ``Model.list`` and a model that
does not exist; then reading models back and changing them: ``download`` of a folder, a
single file, a folder of more files than a page of the artifact listing and a model
registered through the v2 API (WEIR_V2_MODEL, ``name:version``); ``update``,
``add_tags``, ``remove_tags``, ``add_properties``, an update the service refuses, and
``delete``. Prints one step line per call (walk.step, as the azure-ai-ml walks do).

Runs in the client's own virtualenv (tests/clients/azureml-core.txt), nothing of Weir
imported, with a working directory it may write in (the SDK uploads only paths under it).
Configuration (environment): WEIR_URL, WEIR_BLOB_URL, WEIR_TOKEN, WEIR_SUBSCRIPTION,
WEIR_GROUP, WEIR_WORKSPACE, WEIR_V2_MODEL, REQUESTS_CA_BUNDLE (Weir's certificate), HOME
(the SDK caches discovery results in ~/.azureml).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from azureml._vendor.azure_cli_core.cloud import Cloud, CloudEndpoints, CloudSuffixes
from azureml.core import Workspace
from azureml.core.authentication import AbstractAuthentication, _SubscriptionInfo
from azureml.core.model import Model
from azureml.exceptions import WebserviceException
from walk import step

URL = os.environ["WEIR_URL"]
TOKEN = os.environ["WEIR_TOKEN"]
SUBSCRIPTION = os.environ["WEIR_SUBSCRIPTION"]
# Weir's blob host (host:port): the cloud's storage suffix, as {account}.blob.{suffix}.
BLOB_HOST = urlsplit(os.environ["WEIR_BLOB_URL"]).netloc


class WeirAuthentication(AbstractAuthentication):
    """Weir as the cloud, its API token as every token the SDK asks for."""

    def __init__(self):
        # Not super().__init__(): it would fetch Azure's public cloud metadata.
        self._cloud_type = Cloud(
            "Weir",
            endpoints=CloudEndpoints(
                management=URL + "/",
                resource_manager=URL + "/",
                active_directory="https://login.invalid",
                active_directory_resource_id=URL + "/",
                portal="https://portal.invalid/",
            ),
            suffixes=CloudSuffixes(storage_endpoint=BLOB_HOST),
        )

    def _get_arm_token(self):
        return TOKEN

    def _get_graph_token(self):
        return TOKEN

    def _get_azureml_client_token(self):
        return TOKEN

    def _get_all_subscription_ids(self):
        return [_SubscriptionInfo("weir", SUBSCRIPTION)], "weir-tenant"

    def _get_workspace(self, subscription_id, resource_group, name):
        return None


def model(found: Model) -> dict:
    return {"id": found.id, "name": found.name, "version": found.version, "url": found.url}


def metadata(found: Model) -> dict:
    return {"description": found.description, "tags": found.tags, "properties": found.properties}


def files_under(path: str) -> dict:
    """Every file at or under ``path``, relative to it, with its text."""
    root = Path(path)
    if root.is_file():
        return {root.name: root.read_text()}
    return {
        found.relative_to(root).as_posix(): found.read_text()
        for found in sorted(root.rglob("*"))
        if found.is_file()
    }


def refused(action) -> dict:
    """What the SDK raised for an action the service (or the SDK) refuses."""
    try:
        action()
    except WebserviceException as error:
        return {"exception": type(error).__name__, "message": error.message}
    raise AssertionError("the action was not refused")


def main() -> None:
    auth = WeirAuthentication()
    workspaces = []

    def connect():
        ws = Workspace(
            SUBSCRIPTION, os.environ["WEIR_GROUP"], os.environ["WEIR_WORKSPACE"], auth=auth
        )
        workspaces.append(ws)
        details = ws.get_details()
        context = ws.service_context
        return {
            "name": ws.name,
            "resource_group": ws.resource_group,
            "subscription_id": ws.subscription_id,
            "location": ws.location,
            "id": details["id"],
            # What the SDK reads from the bearer token (it must be a JWT): its expiry.
            "token_expires_on": auth.get_token().expires_on,
            "discovery": context._get_discovery_url(),
            "history": context._get_run_history_url(),
            "modelmanagement": context._get_modelmanagement_url(),
            "api": context._get_api_url(),
        }

    step("workspace", connect)
    ws = workspaces[0]
    # The SDK uploads only paths under the working directory.
    folder = Path(tempfile.mkdtemp(dir=os.getcwd())) / "model"
    (folder / "weights").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"pickled v1 model")
    (folder / "weights" / "w.txt").write_text("0.5\n")
    model_path = os.path.relpath(folder)

    step("register", lambda: model(Model.register(ws, model_path=model_path, model_name="m1")))
    step("get_by_name", lambda: model(Model(ws, "m1")))
    step("get_by_version", lambda: model(Model(ws, name="m1", version=1)))
    step(
        "register_again", lambda: model(Model.register(ws, model_path=model_path, model_name="m1"))
    )
    step("latest", lambda: model(Model(ws, "m1")))
    step("list", lambda: [model(found) for found in Model.list(ws)])

    def missing(**kwargs):
        try:
            Model(ws, **kwargs)
        except WebserviceException as error:
            return {"exception": type(error).__name__, "message": error.message}
        raise AssertionError(f"Model(ws, {kwargs}) was found")

    step("missing_by_name", lambda: missing(name="nope"))
    step("missing_by_version", lambda: missing(name="nope", version=1))

    # Reading models back: the bytes, wherever the model came from.
    downloads = Path(tempfile.mkdtemp(dir=os.getcwd()))

    def download(name: str, version: int, target: str, exist_ok: bool = False) -> dict:
        path = Model(ws, name=name, version=version).download(
            target_dir=str(downloads / target), exist_ok=exist_ok
        )
        return {
            "path": os.path.relpath(path, downloads / target),
            "files": files_under(path),
        }

    step("download_folder", lambda: download("m1", 1, "folder"))
    step("download_again", lambda: refused(lambda: download("m1", 1, "folder")))
    step("download_overwrite", lambda: download("m1", 1, "folder", exist_ok=True))
    single = Path(tempfile.mkdtemp(dir=os.getcwd())) / "single.pkl"
    single.write_bytes(b"one pickled file")
    step(
        "register_file",
        lambda: model(Model.register(ws, model_path=os.path.relpath(single), model_name="one")),
    )
    step("download_file", lambda: download("one", 1, "file"))
    # More files than one page of the artifact service's listing.
    many = Path(tempfile.mkdtemp(dir=os.getcwd())) / "many"
    many.mkdir()
    for index in range(130):
        (many / f"part-{index:03}.txt").write_text(f"part {index}\n")
    step(
        "register_many",
        lambda: model(Model.register(ws, model_path=os.path.relpath(many), model_name="many")),
    )
    step("download_many", lambda: download("many", 1, "many"))
    v2_name, v2_version = os.environ["WEIR_V2_MODEL"].split(":")
    step("download_v2", lambda: download(v2_name, int(v2_version), "v2"))

    # Changing models: description, tags and properties, then deleting.
    def update():
        found = Model(ws, name="m1", version=2)
        found.update(description="ridge, second fit", tags={"team": "a", "stage": "dev"})
        return metadata(Model(ws, name="m1", version=2))

    step("update", update)

    def tag_and_property():
        found = Model(ws, name="m1", version=2)
        found.add_tags({"owner": "v1-script"})
        found.remove_tags(["stage"])
        found.add_properties({"auc": "0.91"})
        return metadata(Model(ws, name="m1", version=2))

    step("tag_and_property", tag_and_property)

    def update_bad():
        found = Model(ws, name="m1", version=2)
        refusal = refused(lambda: found.update(tags={"team": ["not", "a", "string"]}))
        return {**refusal, "after": metadata(Model(ws, name="m1", version=2))}

    step("update_bad", update_bad)

    first_version = Model(ws, name="m1", version=1)
    step("delete", lambda: first_version.delete())
    step("deleted", lambda: missing(name="m1", version=1))
    step("delete_again", lambda: refused(first_version.delete))
    step("after_delete", lambda: [model(found) for found in Model.list(ws, name="m1")])


if __name__ == "__main__":
    main()
