"""Azure's SDK v1 (azureml-core) deploying to Weir as a v1 AKS script does, unchanged:
``Model.register``, ``ComputeTarget(ws, name)``, then an ``AksWebservice`` (deploy, wait, run,
logs, keys, key regeneration, update to token auth, token, delete) and an ``AksEndpoint``
(deploy ver1, ``create_version`` ver2 at 10%, ``update_version`` to 20%, a split of scoring
requests, default and control versions, the per-version scoring URIs, ``delete_version``,
delete). Prints one step line per call (walk.step).

Runs in the client's own virtualenv; the configuration is sdk_v1_walk.py's, plus
WEIR_COMPUTE (an attached Kubernetes compute) and WEIR_SPLIT_REQUESTS (how many requests
measure the traffic split).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import requests
from azureml.core import Environment, Workspace
from azureml.core.compute import ComputeTarget
from azureml.core.model import InferenceConfig, Model
from azureml.core.webservice import AksEndpoint, AksWebservice, Webservice
from azureml.exceptions import WebserviceException
from sdk_v1_walk import WeirAuthentication
from walk import step

SCORE = """
import json
import os

scale = None


def init():
    global scale
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "scale.json")) as f:
        scale = json.load(f)["scale"]


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"prediction": [x * scale for x in data], "scale": scale}
"""
CONDA = "name: v1env\ndependencies:\n  - pip\n"


def version_view(version) -> dict:
    return {
        "state": version.state,
        "scoring_uri": version.scoring_uri,
        "traffic_percentile": version.traffic_percentile,
        "is_default": version.is_default,
        "version_type": version.version_type,
        "num_replicas": version.num_replicas,
        "models": [m.id for m in version.models],
        "collects": version.data_collection.storage_enabled,
    }


def refused(action) -> dict:
    try:
        action()
    except WebserviceException as error:
        return {"exception": type(error).__name__, "message": error.message}
    raise AssertionError("the call was not refused")


def main() -> None:
    auth = WeirAuthentication()
    ws = Workspace(
        os.environ["WEIR_SUBSCRIPTION"],
        os.environ["WEIR_GROUP"],
        os.environ["WEIR_WORKSPACE"],
        auth=auth,
    )
    work = Path(tempfile.mkdtemp(dir=os.getcwd()))
    models = []
    for scale in (2, 3):
        folder = work / f"model{scale}" / "model"
        folder.mkdir(parents=True)
        (folder / "scale.json").write_text(json.dumps({"scale": scale}))
        models.append(Model.register(ws, model_path=os.path.relpath(folder), model_name="scaler"))
    step("register", lambda: [m.id for m in models])

    source = work / "src"
    source.mkdir()
    (source / "score.py").write_text(SCORE)
    (work / "conda.yml").write_text(CONDA)
    environment = Environment.from_conda_specification("v1env", str(work / "conda.yml"))
    inference = InferenceConfig(
        entry_script="score.py", source_directory=os.path.relpath(source), environment=environment
    )
    computes = []
    step(
        "compute",
        lambda: computes.append(ComputeTarget(ws, os.environ["WEIR_COMPUTE"]))
        or {"name": computes[0].name, "type": computes[0].type},
    )
    aks = computes[0]
    sample = json.dumps({"data": [1, 2, 3]})

    # -- an AksWebservice
    services = []

    def deploy_service():
        config = AksWebservice.deploy_configuration(
            cpu_cores=0.1, memory_gb=0.5, num_replicas=1, collect_model_data=True
        )
        service = Model.deploy(ws, "svc1", [models[0]], inference, config, aks)
        service.wait_for_deployment(show_output=False)
        services.append(service)
        return {
            "state": service.state,
            "compute_type": service.compute_type,
            "scoring_uri": service.scoring_uri,
            "auth_enabled": service.auth_enabled,
            "num_replicas": service.num_replicas,
            "cpu": service.container_resource_requirements.cpu,
            "memory_gb": service.container_resource_requirements.memory_in_gb,
            "storage_enabled": service.data_collection.storage_enabled,
        }

    step("service_deploy", deploy_service)
    service = services[0]
    step("service_run", lambda: service.run(sample))
    step("service_logs", lambda: {"logs": service.get_logs()})
    keys = []
    step("service_keys", lambda: keys.append(service.get_keys()) or list(keys[0]))

    def regenerate():
        service.regen_key("Primary")
        new = service.get_keys()
        old = requests.post(
            service.scoring_uri,
            data=sample,
            headers={"Authorization": f"Bearer {keys[0][0]}", "Content-Type": "application/json"},
            timeout=30,
        )
        return {"keys": list(new), "old_key_status": old.status_code, "run": service.run(sample)}

    step("service_regen_key", regenerate)

    def to_token_auth():
        service.update(auth_enabled=False, token_auth_enabled=True, num_replicas=2)
        service.wait_for_deployment()
        fetched = Webservice(ws, "svc1")
        return {
            "auth_enabled": fetched.auth_enabled,
            "token_auth_enabled": fetched.token_auth_enabled,
            "num_replicas": fetched.num_replicas,
            "state": fetched.state,
        }

    step("service_update", to_token_auth)

    def token():
        fetched = Webservice(ws, "svc1")
        value, refresh_after = fetched.get_token()
        return {"token": value, "refresh_after": refresh_after, "run": fetched.run(sample)}

    step("service_token", token)
    step("service_list", lambda: [(s.name, s.compute_type) for s in Webservice.list(ws)])

    def delete_service():
        Webservice(ws, "svc1").delete()
        return refused(lambda: Webservice(ws, "svc1"))

    step("service_delete", delete_service)

    # -- an AksEndpoint
    endpoints = []

    def deploy_endpoint():
        config = AksEndpoint.deploy_configuration(
            version_name="ver1", traffic_percentile=100, cpu_cores=0.1, memory_gb=0.5
        )
        endpoint = Model.deploy(ws, "ep1", [models[0]], inference, config, aks)
        endpoint.wait_for_deployment()
        endpoints.append(AksEndpoint(ws, "ep1"))
        return {
            "compute_type": endpoints[0].compute_type,
            "scoring_uri": endpoints[0].scoring_uri,
            "versions": {n: version_view(v) for n, v in endpoints[0].versions.items()},
        }

    step("endpoint_deploy", deploy_endpoint)
    endpoint = endpoints[0]

    def create_version():
        endpoint.create_version(
            "ver2",
            models=[models[1]],
            inference_config=inference,
            traffic_percentile=10,
            collect_model_data=True,
        )
        endpoint.wait_for_deployment()
        fetched = AksEndpoint(ws, "ep1")
        return {n: version_view(v) for n, v in fetched.versions.items()}

    step("create_version", create_version)

    def update_version():
        endpoint.update_version("ver2", traffic_percentile=20)
        endpoint.wait_for_deployment()
        fetched = AksEndpoint(ws, "ep1")
        return {n: version_view(v) for n, v in fetched.versions.items()}

    step("update_version", update_version)

    def split():
        fetched = AksEndpoint(ws, "ep1")
        key = fetched.get_keys()[0]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        scales = Counter()
        with requests.Session() as session:
            for _ in range(int(os.environ.get("WEIR_SPLIT_REQUESTS", "300"))):
                answer = session.post(fetched.scoring_uri, data=sample, headers=headers, timeout=30)
                answer.raise_for_status()
                scales[answer.json()["scale"]] += 1
        return {
            "scales": dict(scales),
            "run": fetched.run(sample),
            "by_version": {
                name: session_post(version.scoring_uri, sample, headers)
                for name, version in fetched.versions.items()
            },
        }

    step("split", split)

    def make_default():
        endpoint.update_version("ver1", traffic_percentile=30)
        endpoint.wait_for_deployment()
        endpoint.update_version("ver2", is_default=True, is_control_version_type=True)
        endpoint.wait_for_deployment()
        fetched = AksEndpoint(ws, "ep1")
        return {n: version_view(v) for n, v in fetched.versions.items()}

    step("default_version", make_default)

    def bad_input():
        fetched = AksEndpoint(ws, "ep1")
        return {
            "clash": refused(
                lambda: fetched.create_version(
                    "ver1", models=[models[0]], inference_config=inference
                )
            ),
            "over_100": refused(lambda: fetched.update_version("ver1", traffic_percentile=150)),
            "after": {n: version_view(v) for n, v in AksEndpoint(ws, "ep1").versions.items()},
        }

    step("bad_input", bad_input)

    def delete_version():
        endpoint.delete_version("ver1")
        endpoint.wait_for_deployment()
        fetched = AksEndpoint(ws, "ep1")
        return {n: version_view(v) for n, v in fetched.versions.items()}

    step("delete_version", delete_version)
    step("endpoint_show", lambda: AksEndpoint(ws, "ep1").serialize())


def session_post(uri: str, body: str, headers: dict) -> dict:
    answer = requests.post(uri, data=body, headers=headers, timeout=30)
    answer.raise_for_status()
    return answer.json()


def delete_endpoint() -> None:
    """The last step, run on its own after the test has read the endpoint through v2."""
    ws = Workspace(
        os.environ["WEIR_SUBSCRIPTION"],
        os.environ["WEIR_GROUP"],
        os.environ["WEIR_WORKSPACE"],
        auth=WeirAuthentication(),
    )

    def delete():
        AksEndpoint(ws, "ep1").delete()
        return refused(lambda: AksEndpoint(ws, "ep1"))

    step("endpoint_delete", delete)


if __name__ == "__main__":
    delete_endpoint() if sys.argv[1:] == ["delete"] else main()
