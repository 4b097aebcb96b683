"""What every command group shares: the client for the scope an invocation names, waiting
(or not) for an operation, the delete confirmation, and the parser's common options."""

from __future__ import annotations

import argparse
import sys

from cli import config
from cli.client import Client
from cli.errors import CliError


def client_for(args) -> Client:
    settings = config.load()
    if getattr(args, "subscription", None):
        settings.subscription = args.subscription
    return Client(settings, args.resource_group, args.workspace_name)


def workspace_location(client: Client) -> str:
    return client.get(client.workspace_path()).get("location") or "local"


def finish(client: Client, response, title: str, args) -> None:
    if not args.no_wait:
        client.wait(response, title)


def confirm(args, what: str) -> None:
    if args.yes or not sys.stdin.isatty():
        return
    answer = input(f"Are you sure you want to delete {what}? (y/n): ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("not deleted")


# ---- the parser ---------------------------------------------------------------------------
def add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-g", "--resource-group", help="the resource group [defaults.group]")
    parser.add_argument("-w", "--workspace-name", help="the workspace [defaults.workspace]")
    parser.add_argument("--subscription", help="the subscription id [defaults.subscription]")


def add_output(parser: argparse.ArgumentParser) -> None:
    add_scope(parser)
    parser.add_argument(
        "-o", "--output", default="json", choices=["json", "table", "tsv", "yaml", "none"]
    )
    parser.add_argument("--query", help="a JMESPath query applied to the result")


def command(groups, name: str, handler, help_text: str):
    parser = groups.add_parser(name, help=help_text, description=help_text)
    add_output(parser)
    parser.set_defaults(handler=handler)
    return parser
