"""``weir``: command groups and flags as ``az ml`` has them, over Weir's REST API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from cli import assets, batch, config, jobs, rollouts, sdk, specs
from cli.client import Client
from cli.common import add_scope, client_for, command, confirm, finish, workspace_location
from cli.errors import CliError
from cli.output import render
from contracts.arm import PROVIDER

ASSET_COLLECTIONS = {"model": "models", "environment": "environments", "code": "codes"}
CONTAINER_TYPES = {
    "inference-server": "InferenceServer",
    "storage-initializer": "StorageInitializer",
}


# ---- shared ----------------------------------------------------------------------------
def endpoint_path(client: Client, name: str) -> str:
    return f"{client.workspace_path()}/onlineEndpoints/{name}"


def deployment_path(client: Client, endpoint: str, name: str) -> str:
    return f"{endpoint_path(client, endpoint)}/deployments/{name}"


# ---- configure and workspaces -----------------------------------------------------------
def configure(args):
    parser = config.read_file()
    if args.token == "-":  # from standard input: a token on a command line is visible in ps
        args.token = sys.stdin.readline().strip() or None
    for key in ("url", "token", "ca_bundle"):
        value = getattr(args, key)
        if value is not None:
            parser.set("server", key, str(Path(value).resolve()) if key == "ca_bundle" else value)
    for assignment in args.defaults or []:
        key, sep, value = assignment.partition("=")
        if not sep or key not in config.DEFAULT_NAMES:
            raise CliError(
                f"--defaults takes {'|'.join(sorted(config.DEFAULT_NAMES))}=value, "
                f"not '{assignment}'"
            )
        if value:
            parser.set("defaults", key, value)
        else:
            parser.remove_option("defaults", key)
    if any(getattr(args, k) is not None for k in ("url", "token", "ca_bundle")) or args.defaults:
        config.write_file(parser)
    return {
        "config": str(config.path()),
        "url": parser.get("server", "url", fallback=None),
        "token": "(set)" if parser.get("server", "token", fallback=None) else None,
        "ca_bundle": parser.get("server", "ca_bundle", fallback=None),
        "defaults": dict(parser.items("defaults")),
    }


def ml_client(args):
    """Print Python that connects azure-ai-ml's MLClient to this Weir."""
    settings = config.load()
    if args.subscription:
        settings.subscription = args.subscription
    try:
        print(sdk.ml_client_snippet(settings, args.resource_group, args.workspace_name), end="")
    except ValueError as exc:
        raise CliError(str(exc)) from None


def workspace_entity(resource: dict) -> dict:
    properties = resource.get("properties", {})
    # /subscriptions/{s}/resourceGroups/{group}/...
    parts = (resource.get("id") or "").split("/")
    return {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "location": resource.get("location"),
        "resource_group": parts[4] if len(parts) > 4 else None,
        "description": properties.get("description"),
        "tags": resource.get("tags") or {},
        "provisioning_state": properties.get("provisioningState"),
    }


def workspace_create(args):
    client = client_for(args)
    body = {"location": args.location, "properties": {}}
    if args.description:
        body["properties"]["description"] = args.description
    response = client.call("PUT", client.workspace_path(args.name), body)
    return workspace_entity(response.json())


def workspace_show(args):
    client = client_for(args)
    return workspace_entity(client.get(client.workspace_path(args.name)))


def workspace_list(args):
    client = client_for(args)
    path = (
        f"/subscriptions/{client.config.subscription}/resourceGroups/{client.group}"
        f"/providers/{PROVIDER}/workspaces"
    )
    return [workspace_entity(w) for w in client.list(path)]


# ---- online endpoints ---------------------------------------------------------------------
def put_endpoint(client: Client, spec, title: str, args, location: str | None = None) -> str:
    """PUT the endpoint a YAML-shaped ``spec`` describes and follow the operation (unless
    --no-wait); the endpoint's path."""
    body = specs.endpoint_body(spec, location or workspace_location(client))
    path = endpoint_path(client, spec["name"])
    finish(client, client.call("PUT", path, body), title, args)
    return path


def endpoint_create(args):
    spec = specs.load(args.file, args.set, name=args.name)
    client = client_for(args)
    path = put_endpoint(client, spec, f"Creating endpoint {spec['name']}", args)
    return specs.endpoint_entity(client.get(path))


def endpoint_show(args):
    client = client_for(args)
    return specs.endpoint_entity(client.get(endpoint_path(client, args.name)))


def endpoint_list(args):
    client = client_for(args)
    items = client.list(f"{client.workspace_path()}/onlineEndpoints")
    return [specs.endpoint_entity(item) for item in items]


def endpoint_update(args):
    client = client_for(args)
    if args.file:
        spec = specs.load(args.file, args.set, name=args.name)
    else:
        if not args.name:
            raise CliError("pass --name (or -f FILE)")
        current = specs.endpoint_entity(client.get(endpoint_path(client, args.name)))
        spec = specs.endpoint_spec(current)
        for assignment in args.set or []:
            specs.apply_set(spec, assignment)
    if args.traffic is not None:
        spec["traffic"] = specs.traffic_map(args.traffic, "--traffic")
    if args.mirror_traffic is not None:
        spec["mirror_traffic"] = specs.traffic_map(args.mirror_traffic, "--mirror-traffic")
    path = put_endpoint(client, spec, f"Updating endpoint {spec['name']}", args)
    return specs.endpoint_entity(client.get(path))


def endpoint_delete(args):
    client = client_for(args)
    confirm(args, f"online endpoint '{args.name}' and all its deployments")
    path = endpoint_path(client, args.name)
    response = client.call("DELETE", path)
    finish(client, response, f"Deleting endpoint {args.name}", args)
    return None


def credentials(client: Client, name: str) -> dict:
    path = endpoint_path(client, name)
    entity = specs.endpoint_entity(client.get(path))
    if entity["auth_mode"] == "key":
        return client.call("POST", f"{path}/listKeys").json()
    return client.call("POST", f"{path}/token").json()


def endpoint_get_credentials(args):
    return credentials(client_for(args), args.name)


def endpoint_invoke(args):
    client = client_for(args)
    entity = specs.endpoint_entity(client.get(endpoint_path(client, args.name)))
    secret = credentials(client, args.name)
    token = secret.get("primaryKey") or secret.get("accessToken")
    try:
        body = Path(args.request_file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read --request-file {args.request_file}: {exc.strerror}") from None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if args.deployment_name:
        headers["azureml-model-deployment"] = args.deployment_name
    url, host = scoring_target(entity["scoring_uri"])
    if host:
        headers["Host"] = host
    try:
        response = requests.post(url, data=body, headers=headers, timeout=args.timeout)
    except requests.ConnectionError:
        raise CliError(f"cannot reach the scoring URI {entity['scoring_uri']}") from None
    if response.status_code >= 400:
        served = response.headers.get("azureml-model-deployment", "")
        detail = response.text.strip()[:500]
        by = f" (deployment {served})" if served else ""
        raise CliError(f"scoring answered {response.status_code}{by}: {detail}")
    # az ml prints the model's answer as a JSON string.
    return response.text


def scoring_target(uri: str) -> tuple[str, str | None]:
    """``*.localhost`` names do not resolve everywhere: send to 127.0.0.1 with the Host."""
    parts = urlsplit(uri)
    if parts.hostname and parts.hostname.endswith(".localhost"):
        netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
        return urlunsplit(parts._replace(netloc=netloc)), parts.netloc
    return uri, None


# ---- online deployments -------------------------------------------------------------------
def deployment_create(args, update: bool = False):
    client = client_for(args)
    if args.file or not update:
        spec = specs.load(args.file, args.set, name=args.name, endpoint_name=args.endpoint_name)
    else:
        if not (args.name and args.endpoint_name):
            raise CliError("pass --name and --endpoint-name (or -f FILE)")
        shown = client.get(deployment_path(client, args.endpoint_name, args.name))
        spec = specs.deployment_spec(specs.deployment_entity(shown, args.endpoint_name))
        for assignment in args.set or []:
            specs.apply_set(spec, assignment)
    specs.check_deployment(spec)
    endpoint, name = spec["endpoint_name"], spec["name"]
    if not client.exists(endpoint_path(client, endpoint)):
        raise CliError(f"online endpoint '{endpoint}' does not exist; create it first")
    location = workspace_location(client)
    references = assets.deployment_references(client, spec)
    body = specs.deployment_body(spec, location, references)
    path = deployment_path(client, endpoint, name)
    response = client.call("PUT", path, body)
    verb = "Updating" if update else "Creating"
    finish(client, response, f"{verb} deployment {name}", args)
    if getattr(args, "all_traffic", False):
        current = specs.endpoint_entity(client.get(endpoint_path(client, endpoint)))
        traffic = {deployment: 0 for deployment in current["traffic"]}
        traffic[name] = 100
        spec_endpoint = specs.endpoint_spec(current)
        spec_endpoint["traffic"] = traffic
        put_endpoint(client, spec_endpoint, f"Sending all traffic to {name}", args, location)
    return specs.deployment_entity(client.get(path), endpoint)


def deployment_update(args):
    return deployment_create(args, update=True)


def deployment_show(args):
    client = client_for(args)
    resource = client.get(deployment_path(client, args.endpoint_name, args.name))
    return specs.deployment_entity(resource, args.endpoint_name)


def deployment_list(args):
    client = client_for(args)
    items = client.list(f"{endpoint_path(client, args.endpoint_name)}/deployments")
    return [specs.deployment_entity(item, args.endpoint_name) for item in items]


def deployment_delete(args):
    client = client_for(args)
    confirm(args, f"online deployment '{args.name}'")
    response = client.call("DELETE", deployment_path(client, args.endpoint_name, args.name))
    finish(client, response, f"Deleting deployment {args.name}", args)
    return None


def deployment_get_logs(args):
    client = client_for(args)
    body = {"containerType": CONTAINER_TYPES[args.container_type]}
    if args.lines:
        body["tail"] = args.lines
    path = f"{deployment_path(client, args.endpoint_name, args.name)}/getLogs"
    return client.call("POST", path, body).json().get("content", "")


# ---- models, environments, codes --------------------------------------------------------
def asset_create(args):
    kind = args.group
    fields = {"name": args.name, "version": args.version}
    for extra in ("path", "image", "conda_file", "type", "description"):
        if getattr(args, extra, None) is not None:
            fields[extra] = getattr(args, extra)
    spec = specs.load(args.file, args.set, **fields)
    allowed = {
        "model": specs.MODEL_KEYS,
        "environment": specs.ENVIRONMENT_KEYS,
        "code": specs.CODE_KEYS,
    }[kind]
    specs.check_keys(spec, allowed, kind)
    specs.require(spec, "name", f"the {kind}'s name")
    client = client_for(args)
    if kind == "environment":
        reference = assets.register_environment(client, spec, spec.base)
    else:
        path = specs.require(spec, "path", f"the local file or folder of the {kind}")
        local = (spec.base / path).resolve()
        if not local.exists():
            raise CliError(f"{kind} path {path} does not exist{spec.where()}")
        if kind == "model":
            reference = assets.register_model(client, spec, spec.base)
        else:
            reference = assets.register_code(client, local, spec["name"], spec.get("version"))
    _, name, version = reference.split(":")
    collection = f"{client.workspace_path()}/{ASSET_COLLECTIONS[kind]}"
    resource = client.get(f"{collection}/{name}/versions/{version}")
    return specs.asset_entity(resource, "version")


def asset_show(args):
    client = client_for(args)
    collection = f"{client.workspace_path()}/{ASSET_COLLECTIONS[args.group]}/{args.name}"
    if args.version:
        return specs.asset_entity(client.get(f"{collection}/versions/{args.version}"), "version")
    return specs.asset_entity(client.get(collection), "container")


def asset_list(args):
    client = client_for(args)
    collection = f"{client.workspace_path()}/{ASSET_COLLECTIONS[args.group]}"
    if args.name:
        items = client.list(f"{collection}/{args.name}/versions")
        return [specs.asset_entity(item, "version") for item in items]
    return [specs.asset_entity(item, "container") for item in client.list(collection)]


# ---- the parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weir",
        description="Weir's command line: online and batch endpoints, deployments, jobs, assets.",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")

    configure_parser = groups.add_parser("configure", help="server, credentials and defaults")
    configure_parser.add_argument("--url", help="Weir's API, e.g. https://127.0.0.1:8443")
    configure_parser.add_argument(
        "--token", help="an API token (manage.py create_api_token); - reads it from stdin"
    )
    configure_parser.add_argument("--ca-bundle", help="the server's certificate (self-signed)")
    configure_parser.add_argument(
        "--defaults", nargs="*", metavar="KEY=VALUE", help="group=, workspace=, subscription="
    )
    configure_parser.add_argument("-o", "--output", default="json")
    configure_parser.add_argument("--query")
    configure_parser.set_defaults(handler=configure)

    text = "Print Python that connects Azure's ML SDK v2 (azure-ai-ml MLClient) to this Weir."
    p = groups.add_parser("ml-client", help=text, description=text)
    add_scope(p)
    p.set_defaults(handler=ml_client, output="none", query=None)

    workspace = groups.add_parser("workspace", help="workspaces").add_subparsers(
        dest="command", required=True
    )
    p = command(workspace, "create", workspace_create, "Create a workspace.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-l", "--location", default="local")
    p.add_argument("--description")
    p = command(workspace, "show", workspace_show, "Show a workspace.")
    p.add_argument("-n", "--name")
    command(workspace, "list", workspace_list, "List the workspaces of a resource group.")

    endpoint = groups.add_parser("online-endpoint", help="online endpoints").add_subparsers(
        dest="command", required=True
    )
    p = command(endpoint, "create", endpoint_create, "Create an online endpoint.")
    p.add_argument("-f", "--file")
    p.add_argument("-n", "--name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true")
    p = command(endpoint, "show", endpoint_show, "Show an online endpoint.")
    p.add_argument("-n", "--name", required=True)
    command(endpoint, "list", endpoint_list, "List online endpoints.")
    p = command(endpoint, "update", endpoint_update, "Update an online endpoint.")
    p.add_argument("-f", "--file")
    p.add_argument("-n", "--name")
    p.add_argument("--traffic", help='e.g. "blue=90 green=10"')
    p.add_argument("--mirror-traffic", help='e.g. "green=10"')
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--no-wait", action="store_true")
    p = command(endpoint, "delete", endpoint_delete, "Delete an online endpoint.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p = command(endpoint, "invoke", endpoint_invoke, "Score a request through the endpoint.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-r", "--request-file", required=True)
    p.add_argument("-d", "--deployment-name")
    p.add_argument("--timeout", type=float, default=90)
    p = command(endpoint, "get-credentials", endpoint_get_credentials, "Keys or a token.")
    p.add_argument("-n", "--name", required=True)
    rollouts.add_parsers(endpoint)

    deployment = groups.add_parser("online-deployment", help="online deployments").add_subparsers(
        dest="command", required=True
    )
    for name, handler, text in (
        ("create", deployment_create, "Create an online deployment."),
        ("update", deployment_update, "Update an online deployment."),
    ):
        p = command(deployment, name, handler, text)
        p.add_argument("-f", "--file")
        p.add_argument("-n", "--name")
        p.add_argument("-e", "--endpoint-name")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--no-wait", action="store_true")
        if name == "create":
            p.add_argument("--all-traffic", action="store_true")
    p = command(deployment, "show", deployment_show, "Show an online deployment.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)
    p = command(deployment, "list", deployment_list, "List an endpoint's deployments.")
    p.add_argument("-e", "--endpoint-name", required=True)
    p = command(deployment, "delete", deployment_delete, "Delete an online deployment.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p = command(deployment, "get-logs", deployment_get_logs, "A deployment's logs.")
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-e", "--endpoint-name", required=True)
    p.add_argument("-l", "--lines", type=int)
    p.add_argument(
        "-c", "--container-type", choices=sorted(CONTAINER_TYPES), default="inference-server"
    )

    batch.add_parsers(groups)
    jobs.add_parsers(groups)

    for kind in ASSET_COLLECTIONS:
        commands = groups.add_parser(kind, help=f"registered {kind}s").add_subparsers(
            dest="command", required=True
        )
        p = command(commands, "create", asset_create, f"Register a {kind} version.")
        p.add_argument("-f", "--file")
        p.add_argument("-n", "--name")
        p.add_argument("-v", "--version")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--description")
        if kind == "environment":
            p.add_argument("-i", "--image")
            p.add_argument("--conda-file")
        else:
            p.add_argument("-p", "--path")
        if kind == "model":
            p.add_argument("-t", "--type")
        p = command(commands, "show", asset_show, f"Show a {kind} (or one version).")
        p.add_argument("-n", "--name", required=True)
        p.add_argument("-v", "--version")
        p = command(commands, "list", asset_list, f"List {kind}s (or a {kind}'s versions).")
        p.add_argument("-n", "--name")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        text = render(result, args.output, args.query, getattr(args, "view", None))
    except CliError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    if text is not None:
        print(text)


if __name__ == "__main__":
    main()
