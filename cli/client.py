"""A thin client of Weir's ARM API: URLs, the token, ARM errors as one line, and waiting
for long-running operations (Azure-AsyncOperation, Location) with progress shown."""

from __future__ import annotations

import time

import requests

from cli.config import Config
from cli.errors import CliError
from cli.progress import Progress
from contracts.arm import PROVIDER

API_VERSION = "2024-04-01"
POLL_SECONDS = 1.0
WAIT_TIMEOUT = 3600.0


class Client:
    def __init__(self, config: Config, group: str | None, workspace: str | None):
        if not config.url:
            raise CliError("no server configured: run `weir configure --url URL --token TOKEN`")
        if not config.token:
            raise CliError("no API token configured: run `weir configure --token TOKEN`")
        self.config = config
        self.base = config.url.rstrip("/")
        self.group = group or config.group
        self.workspace_name = workspace or config.workspace
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {config.token}"
        # Given per request: a session-wide setting loses to REQUESTS_CA_BUNDLE.
        self.verify = config.ca_bundle or True

    # ---- URLs ---------------------------------------------------------------------------
    def workspace_path(self, name: str | None = None) -> str:
        name = name or self.workspace_name
        if not self.group:
            raise CliError(
                "no resource group: pass --resource-group/-g or set a default with "
                "`weir configure --defaults group=NAME`"
            )
        if not name:
            raise CliError(
                "no workspace: pass --workspace-name/-w or set a default with "
                "`weir configure --defaults workspace=NAME`"
            )
        return (
            f"/subscriptions/{self.config.subscription}/resourceGroups/{self.group}"
            f"/providers/{PROVIDER}/workspaces/{name}"
        )

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        separator = "&" if "?" in path else "?"
        return f"{self.base}{path}{separator}api-version={API_VERSION}"

    # ---- calls --------------------------------------------------------------------------
    def call(
        self, method: str, path: str, body=None, ok=(200, 201, 202, 204), headers=None
    ) -> requests.Response:
        try:
            response = self.session.request(
                method,
                self.url(path),
                json=body,
                headers=headers,
                timeout=120,
                verify=self.verify,
            )
        except requests.exceptions.SSLError as exc:
            raise CliError(
                f"TLS failed for {self.base} ({_reason(exc)}); point "
                "`weir configure --ca-bundle` at the server's certificate"
            ) from None
        except requests.ConnectionError:
            raise CliError(f"cannot reach Weir at {self.base}: is it running?") from None
        if response.status_code not in ok:
            raise CliError(arm_message(response))
        return response

    def get(self, path: str) -> dict:
        return self.call("GET", path).json()

    def exists(self, path: str) -> bool:
        return self.call("GET", path, ok=(200, 404)).status_code == 200

    def list(self, path: str) -> list[dict]:
        items, url = [], path
        while url:
            page = self.call("GET", url).json()
            items += page.get("value", [])
            url = page.get("nextLink")
        return items

    def blob_container(self, account_url: str, container: str, sas: str):
        """An azure-storage-blob ContainerClient on Weir's blob server, with a SAS."""
        from azure.storage.blob import ContainerClient

        return ContainerClient(
            account_url, container, credential=sas, connection_verify=self.verify
        )

    def wait(self, response: requests.Response, title: str, quiet: bool = False) -> dict | None:
        """Follow a long-running operation to its end; the operation status (or None when
        the call finished at once). Raises CliError when it failed."""
        status_url = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location")
        if not status_url and not location:
            return None
        progress = Progress(title, quiet)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if status_url:
                status = self.call("GET", status_url).json()
                state = status.get("status", "InProgress")
                percent = status.get("percentComplete")
                progress.update(f"{state} {percent:.0f}%" if percent else state)
                if state in ("Succeeded", "Failed", "Canceled"):
                    progress.done(state)
                    if state != "Succeeded":
                        error = status.get("error") or {}
                        raise CliError(f"{title} {state.lower()}: {error.get('message', state)}")
                    return status
            else:
                answer = self.call("GET", location, ok=(200, 202, 204))
                progress.update("InProgress")
                if answer.status_code != 202:
                    progress.done("Succeeded")
                    return {"status": "Succeeded"}
            time.sleep(POLL_SECONDS)
        raise CliError(f"{title}: still running after {WAIT_TIMEOUT:.0f}s")


def _reason(exc: Exception) -> str:
    """The innermost cause of a TLS failure, e.g. 'certificate verify failed: ...'."""
    text = str(exc)
    return text.rsplit("SSLError(", 1)[-1].rstrip(")'\"").split("(_ssl", 1)[0].strip()[:160]


def arm_message(response: requests.Response) -> str:
    """An ARM error body as one line: code, message, and the field it names."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    message = f"({error.get('code', response.status_code)}) {error.get('message', '')}".strip()
    if error.get("target"):
        message += f" [{error['target']}]"
    for detail in error.get("details") or []:
        if detail.get("message") and detail["message"] not in message:
            target = f" [{detail['target']}]" if detail.get("target") else ""
            message += f"; {detail['message']}{target}"
    return " ".join(message.split())
