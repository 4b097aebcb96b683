"""``weir batch-endpoint``, ``weir batch-deployment`` and ``weir compute``: batch endpoints,
their model deployments and the AmlCompute clusters they run on, as ``az ml`` has them."""

from __future__ import annotations

import uuid
from pathlib import Path

from cli import assets, batch_specs, datastore, specs
from cli.client import Client
from cli.common import client_for, command, confirm, finish, workspace_location
from cli.errors import CliError

MFE = "/mferp/managementfrontend"
# compute create's options for amlCompute YAML keys, as az ml has them.
COMPUTE_OPTIONS = {
    "type": str,
    "size": str,
    "tier": str,
    "min_instances": int,
    "max_instances": int,
    "idle_time_before_scale_down": int,
}


def endpoint_path(client: Client, name: str) -> str:
    return f"{client.workspace_path()}/batchEndpoints/{name}"


def deployment_path(client: Client, endpoint: str, name: str) -> str:
    return f"{endpoint_path(client, endpoint)}/deployments/{name}"


def compute_path(client: Client, name: str) -> str:
    return f"{client.workspace_path()}/computes/{name}"


def with_location(client: Client, body: dict, location: str | None = None) -> dict:
    """The body, checked already, with the workspace's location when the YAML gave none."""
    if not body.get("location"):
        body["location"] = location or workspace_location(client)
    return body


# ---- batch endpoints -----------------------------------------------------------------------
def put_endpoint(client: Client, spec, title: str, args, location: str | None = None) -> str:
    """PUT the batch endpoint a YAML-shaped ``spec`` describes (its keys checked before
    anything is sent) and follow the operation unless --no-wait; the endpoint's path."""
    body = with_location(client, batch_specs.batch_endpoint_body(spec, None), location)
    path = endpoint_path(client, spec["name"])
    finish(client, client.call("PUT", path, body), title, args)
    return path


def endpoint_create(args):
    spec = specs.load(args.file, args.set, name=args.name)
    client = client_for(args)
    path = put_endpoint(client, spec, f"Creating batch endpoint {spec.get('name')}", args)
    return batch_specs.batch_endpoint_entity(client.get(path))


def endpoint_show(args):
    client = client_for(args)
    return batch_specs.batch_endpoint_entity(client.get(endpoint_path(client, args.name)))


def endpoint_list(args):
    client = client_for(args)
    items = client.list(f"{client.workspace_path()}/batchEndpoints")
    return [batch_specs.batch_endpoint_entity(item) for item in items]


def endpoint_update(args):
    client = client_for(args)
    if args.file:
        spec = specs.load(args.file, args.set, name=args.name)
    else:
        if not args.name:
            raise CliError("pass --name (or -f FILE)")
        current = batch_specs.batch_endpoint_entity(client.get(endpoint_path(client, args.name)))
        spec = batch_specs.batch_endpoint_spec(current)
        for assignment in args.set or []:
            specs.apply_set(spec, assignment)
    path = put_endpoint(client, spec, f"Updating batch endpoint {spec.get('name')}", args)
    return batch_specs.batch_endpoint_entity(client.get(path))


def endpoint_delete(args):
    client = client_for(args)
    confirm(args, f"batch endpoint '{args.name}' and all its deployments")
    response = client.call("DELETE", endpoint_path(client, args.name))
    finish(client, response, f"Deleting batch endpoint {args.name}", args)
    return None


def endpoint_invoke(args):
    """Start a job: a local input goes up to the default datastore first (as Azure's SDK
    does), then the job is POSTed to the endpoint's scoring URI."""
    client = client_for(args)
    entity = batch_specs.batch_endpoint_entity(client.get(endpoint_path(client, args.name)))
    if args.deployment_name and not client.exists(
        deployment_path(client, args.name, args.deployment_name)
    ):
        raise CliError(f"batch endpoint '{args.name}' has no deployment '{args.deployment_name}'")
    uri, kind = job_input(client, args.input, args.input_type)
    body = batch_specs.invocation_body(
        uri,
        kind,
        job_name=args.job_name,
        mini_batch_size=args.mini_batch_size,
        output_path=args.output_path,
        output_file_name=args.output_file_name,
    )
    # The same id on a resent request starts the job once.
    headers = {"repeatability_request-id": str(uuid.uuid4())}
    if args.deployment_name:
        headers["azureml-model-deployment"] = args.deployment_name
    response = client.call("POST", entity["scoring_uri"], body, ok=(200, 201), headers=headers)
    return batch_specs.job_entity(response.json())


REMOTE_INPUT = ("azureml:", "https://", "http://", "wasbs://", "abfss://", "/subscriptions/")


def job_input(client: Client, given: str, kind: str | None) -> tuple[str, str]:
    """(uri, uri_folder|uri_file) of --input: uploaded first when it is on this machine."""
    if given.startswith(REMOTE_INPUT):
        return given, kind or "uri_folder"
    local = Path(given).expanduser()
    if not local.exists():
        raise CliError(f"--input {given} is neither a datastore URI nor a local file or folder")
    found = "uri_folder" if local.is_dir() else "uri_file"
    if kind and kind != found:
        raise CliError(f"--input {given} is a {'folder' if local.is_dir() else 'file'}, not {kind}")
    return datastore.upload_input(client, local.resolve()), found


def list_jobs(args):
    """The jobs of an endpoint (or of one of its deployments), newest first."""
    client = client_for(args)
    if getattr(args, "endpoint_name", None):
        path = deployment_path(client, args.endpoint_name, args.name)
    else:
        path = endpoint_path(client, args.name)
    client.get(path)  # a 404 names what does not exist
    return [batch_specs.job_entity(job) for job in client.list(f"{MFE}{path}/jobs")]


# ---- batch deployments ---------------------------------------------------------------------
def deployment_create(args, update: bool = False):
    client = client_for(args)
    if args.file or not update:
        spec = specs.load(args.file, args.set, name=args.name, endpoint_name=args.endpoint_name)
    else:
        if not (args.name and args.endpoint_name):
            raise CliError("pass --name and --endpoint-name (or -f FILE)")
        shown = client.get(deployment_path(client, args.endpoint_name, args.name))
        entity = batch_specs.batch_deployment_entity(shown, args.endpoint_name)
        spec = batch_specs.batch_deployment_spec(entity)
        for assignment in args.set or []:
            specs.apply_set(spec, assignment)
    batch_specs.check_batch_deployment(spec)
    endpoint, name = spec["endpoint_name"], spec["name"]
    if not client.exists(endpoint_path(client, endpoint)):
        raise CliError(f"batch endpoint '{endpoint}' does not exist; create it first")
    location = workspace_location(client)
    references = assets.deployment_references(client, spec)
    body = batch_specs.batch_deployment_body(spec, location, references, client.workspace_path())
    path = deployment_path(client, endpoint, name)
    response = client.call("PUT", path, body)
    verb = "Updating" if update else "Creating"
    finish(client, response, f"{verb} batch deployment {name}", args)
    if getattr(args, "set_default", False):
        current = batch_specs.batch_endpoint_entity(client.get(endpoint_path(client, endpoint)))
        endpoint_spec = batch_specs.batch_endpoint_spec(current)
        endpoint_spec["defaults"] = {"deployment_name": name}
        put_endpoint(
            client, endpoint_spec, f"Making {name} the default of {endpoint}", args, location
        )
    return batch_specs.batch_deployment_entity(client.get(path), endpoint)


def deployment_update(args):
    return deployment_create(args, update=True)


def deployment_show(args):
    client = client_for(args)
    resource = client.get(deployment_path(client, args.endpoint_name, args.name))
    return batch_specs.batch_deployment_entity(resource, args.endpoint_name)


def deployment_list(args):
    client = client_for(args)
    items = client.list(f"{endpoint_path(client, args.endpoint_name)}/deployments")
    return [batch_specs.batch_deployment_entity(item, args.endpoint_name) for item in items]


def deployment_delete(args):
    client = client_for(args)
    confirm(args, f"batch deployment '{args.name}'")
    response = client.call("DELETE", deployment_path(client, args.endpoint_name, args.name))
    finish(client, response, f"Deleting batch deployment {args.name}", args)
    return None


# ---- computes ------------------------------------------------------------------------------
def compute_create(args):
    fields = {key: getattr(args, key) for key in COMPUTE_OPTIONS}
    spec = specs.load(args.file, args.set, name=args.name, **fields)
    body = batch_specs.compute_body(spec, None)
    client = client_for(args)
    path = compute_path(client, spec["name"])
    response = client.call("PUT", path, with_location(client, body))
    finish(client, response, f"Creating compute {spec['name']}", args)
    return batch_specs.compute_entity(client.get(path))


def compute_show(args):
    client = client_for(args)
    return batch_specs.compute_entity(client.get(compute_path(client, args.name)))


def compute_list(args):
    client = client_for(args)
    items = client.list(f"{client.workspace_path()}/computes")
    return [batch_specs.compute_entity(item) for item in items]


def compute_delete(args):
    client = client_for(args)
    confirm(args, f"compute '{args.name}'")
    path = f"{compute_path(client, args.name)}?underlyingResourceAction=Delete"
    finish(client, client.call("DELETE", path), f"Deleting compute {args.name}", args)
    return None


# ---- the parser ----------------------------------------------------------------------------
def add_parsers(groups) -> None:
    endpoint = groups.add_parser("batch-endpoint", help="batch endpoints").add_subparsers(
        dest="command", required=True
    )
    for name, handler, text in (
        ("create", endpoint_create, "Create a batch endpoint."),
        ("update", endpoint_update, "Update a batch endpoint."),
    ):
        p = command(endpoint, name, handler, text)
        p.add_argument("-f", "--file")
        p.add_argument("-n", "--name")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--no-wait", action="store_true")
    p = command(endpoint, "show", endpoint_show, "Show a batch endpoint.")
    p.add_argument("-n", "--name", required=True)
    command(endpoint, "list", endpoint_list, "List batch endpoints.")
    p = command(endpoint, "delete", endpoint_delete, "Delete a batch endpoint.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p = command(endpoint, "invoke", endpoint_invoke, "Start a batch scoring job.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument(
        "--input", required=True, help="a local file or folder, or azureml://datastores/..."
    )
    p.add_argument("--input-type", choices=sorted(batch_specs.INPUT_TYPES))
    p.add_argument("-d", "--deployment-name")
    p.add_argument("--mini-batch-size", type=int)
    p.add_argument("--output-path", help="an azureml://datastores/.../paths/... folder")
    p.add_argument("--output-file-name")
    p.add_argument("--job-name")
    p = command(endpoint, "list-jobs", list_jobs, "List the jobs of a batch endpoint.")
    p.add_argument("-n", "--name", required=True)

    deployment = groups.add_parser("batch-deployment", help="batch deployments").add_subparsers(
        dest="command", required=True
    )
    for name, handler, text in (
        ("create", deployment_create, "Create a batch deployment."),
        ("update", deployment_update, "Update a batch deployment."),
    ):
        p = command(deployment, name, handler, text)
        p.add_argument("-f", "--file")
        p.add_argument("-n", "--name")
        p.add_argument("-e", "--endpoint-name")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--no-wait", action="store_true")
        if name == "create":
            p.add_argument(
                "--set-default", action="store_true", help="make it the endpoint's default"
            )
    p = command(deployment, "show", deployment_show, "Show a batch deployment.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)
    p = command(deployment, "list", deployment_list, "List an endpoint's batch deployments.")
    p.add_argument("-e", "--endpoint-name", required=True)
    p = command(deployment, "delete", deployment_delete, "Delete a batch deployment.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p = command(deployment, "list-jobs", list_jobs, "List the jobs of a batch deployment.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)

    compute = groups.add_parser("compute", help="AmlCompute clusters").add_subparsers(
        dest="command", required=True
    )
    p = command(compute, "create", compute_create, "Create an AmlCompute cluster.")
    p.add_argument("-f", "--file")
    p.add_argument("-n", "--name")
    for key, kind in COMPUTE_OPTIONS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=kind)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true")
    p = command(compute, "show", compute_show, "Show a compute.")
    p.add_argument("-n", "--name", required=True)
    command(compute, "list", compute_list, "List computes.")
    p = command(compute, "delete", compute_delete, "Delete a compute.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
