"""The endpoint page's test panel: a request to the endpoint's scoring URI, sent as a client
sends it (with the endpoint's key, or a scoring token, that the API hands the signed-in
person), and what came back."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from controlplane.portal import api

TIMEOUT = 30.0
# An answer longer than this is shown cut.
SHOWN_BYTES = 20_000
DEPLOYMENT_HEADER = "azureml-model-deployment"


@dataclass
class Result:
    refused: api.Answer | None = None  # the API would not hand out a credential
    status: int | None = None
    deployment: str = ""
    body: str = ""
    milliseconds: float = 0.0
    failure: str = ""


def credential(request, endpoint) -> tuple[str | None, api.Answer]:
    """A scoring credential as the API gives it to this person: a key (listKeys) or, for an
    AMLToken endpoint, a token."""
    if endpoint.auth_mode == "AMLToken":
        answer = api.call(request, "POST", f"{endpoint.arm_id}/token")
        return ((answer.body or {}).get("accessToken") if answer.ok else None), answer
    answer = api.call(request, "POST", f"{endpoint.arm_id}/listKeys")
    return ((answer.body or {}).get("primaryKey") if answer.ok else None), answer


def score(request, endpoint, body: str, deployment: str | None) -> Result:
    secret, answer = credential(request, endpoint)
    if secret is None:
        return Result(refused=answer)
    described = api.call(request, "GET", endpoint.arm_id)
    uri = ((described.body or {}).get("properties") or {}).get("scoringUri")
    if not uri:
        return Result(refused=described)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if deployment:
        headers[DEPLOYMENT_HEADER] = deployment
    began = time.perf_counter()
    try:
        response = requests.post(uri, data=body.encode(), headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return Result(failure=f"The scoring URI could not be reached: {exc}")
    return Result(
        status=response.status_code,
        deployment=response.headers.get(DEPLOYMENT_HEADER, ""),
        body=response.text[:SHOWN_BYTES],
        milliseconds=(time.perf_counter() - began) * 1000,
    )
