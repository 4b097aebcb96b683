"""The ``weir`` CLI against the real stack: Azure's safe-rollout guide step by step with
Azure's sample YAML files, and bad input refused with one line and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import joblib
import numpy
import pytest
import requests

from tests.system.conftest import ROOT, cli_runner
from tests.system.test_router import eventually, metric

pytestmark = pytest.mark.system

ONLINE = ROOT / "examples" / "online"
SAMPLE = ONLINE / "managed" / "sample"
REQUEST = ONLINE / "model-1" / "sample-request.json"


@pytest.fixture
def weir(stack, workspace, tmp_path):
    return cli_runner(stack, tmp_path, SAMPLE)


def predictions(model_dir: Path) -> list:
    model = joblib.load(model_dir / "sklearn_regression_model.pkl")
    data = json.loads(REQUEST.read_text())["data"]
    return model.predict(numpy.array(data)).tolist()


def served_by(stack, endpoint: dict, key: str, count: int) -> list[str]:
    """Score ``count`` times straight through the router; who served each."""
    host = urlsplit(endpoint["scoring_uri"]).netloc
    headers = {"Host": host, "Authorization": f"Bearer {key}"}
    who = []
    with requests.Session() as session:
        for _ in range(count):
            answer = session.post(
                f"{stack.router_url}/score", data=REQUEST.read_bytes(), headers=headers, timeout=30
            )
            assert answer.status_code == 200, answer.text
            who.append(answer.headers["azureml-model-deployment"])
    return who


def test_the_safe_rollout_walk(stack, weir, models):
    v1, v2 = predictions(models["model-1"]), predictions(models["model-2"])

    # Create the endpoint (key auth) and blue with all traffic.
    endpoint = weir.json("online-endpoint", "create", "-f", "endpoint.yml")
    assert endpoint["name"] == "my-endpoint" and endpoint["auth_mode"] == "key"
    assert endpoint["provisioning_state"] == "Succeeded"
    blue = weir.json("online-deployment", "create", "-f", "blue-deployment.yml", "--all-traffic")
    assert blue["provisioning_state"] == "Succeeded" and blue["instance_count"] == 1
    assert blue["model"].startswith("azureml:model-") and blue["environment"]
    traffic = weir.json("online-endpoint", "show", "-n", "my-endpoint", "--query", "traffic")
    assert traffic == {"blue": 100}

    # Invoke: the answer is model v1's.
    answer = weir.json(
        "online-endpoint", "invoke", "-n", "my-endpoint", "--request-file", str(REQUEST)
    )
    assert json.loads(answer) == pytest.approx(v1)

    # Scale blue to 2.
    scaled = weir.json(
        "online-deployment",
        "update",
        "-n",
        "blue",
        "-e",
        "my-endpoint",
        "--set",
        "instance_count=2",
    )
    assert scaled["instance_count"] == 2 and scaled["provisioning_state"] == "Succeeded"
    assert len(stack.replicas("blue")) == 2

    # Green with no traffic; invoked by name it answers with model v2.
    green = weir.json("online-deployment", "create", "-f", "green-deployment.yml")
    assert green["provisioning_state"] == "Succeeded"
    endpoint = weir.json("online-endpoint", "show", "-n", "my-endpoint")
    assert endpoint["traffic"].get("green", 0) == 0 and endpoint["traffic"]["blue"] == 100
    answer = weir.json(
        "online-endpoint",
        "invoke",
        "-n",
        "my-endpoint",
        "--request-file",
        str(REQUEST),
        "--deployment-name",
        "green",
    )
    assert json.loads(answer) == pytest.approx(v2)

    key = weir(
        "online-endpoint",
        "get-credentials",
        "-n",
        "my-endpoint",
        "-o",
        "tsv",
        "--query",
        "primaryKey",
    ).stdout.strip()
    assert key

    # Mirror 10% to green: every answer still from blue; green sees about a tenth.
    mirror = weir.json(
        "online-endpoint", "update", "-n", "my-endpoint", "--mirror-traffic", "green=10"
    )
    assert mirror["mirror_traffic"] == {"green": 10}
    before = metric(stack, "weir_router_mirror_requests_total", endpoint="my-endpoint")
    assert set(served_by(stack, endpoint, key, 300)) == {"blue"}

    def mirrored() -> float:
        return metric(stack, "weir_router_mirror_requests_total", endpoint="my-endpoint") - before

    eventually(lambda: mirrored() >= 10)  # shadow answers are counted once they arrive
    assert 10 <= mirrored() <= 55, mirrored()  # binomial(300, 0.1): 30 +- 5.2 sd
    green_log = weir(
        "online-deployment", "get-logs", "-n", "green", "-e", "my-endpoint", "--lines", "1000"
    ).stdout
    assert green_log.count("model 2: request received") >= mirrored()

    # Mirror off: nothing more is copied.
    weir.json("online-endpoint", "update", "-n", "my-endpoint", "--mirror-traffic", "green=0")
    settled = metric(stack, "weir_router_mirror_requests_total", endpoint="my-endpoint")
    served_by(stack, endpoint, key, 50)
    assert metric(stack, "weir_router_mirror_requests_total", endpoint="my-endpoint") == settled

    # 90/10, then all to green.
    split = weir.json(
        "online-endpoint", "update", "-n", "my-endpoint", "--traffic", "blue=90 green=10"
    )
    assert split["traffic"] == {"blue": 90, "green": 10}
    who = served_by(stack, endpoint, key, 400)
    assert 15 <= who.count("green") <= 70, who.count("green")  # binomial(400, 0.1)
    weir.json("online-endpoint", "update", "-n", "my-endpoint", "--traffic", "blue=0 green=100")
    assert set(served_by(stack, endpoint, key, 50)) == {"green"}

    # Delete blue, then the endpoint.
    weir("online-deployment", "delete", "-n", "blue", "-e", "my-endpoint", "--yes")
    names = weir.json("online-deployment", "list", "-e", "my-endpoint", "--query", "[].name")
    assert names == ["green"]
    weir("online-endpoint", "delete", "-n", "my-endpoint", "--yes")
    gone = weir("online-endpoint", "show", "-n", "my-endpoint", check=False)
    assert gone.returncode != 0 and "my-endpoint" in gone.stderr


def assets_and_endpoint(stack, workspace: str, endpoint: str) -> dict:
    """What bad input must leave unchanged: the endpoint (its etag) and every asset."""
    state = {"etag": stack.call("GET", endpoint).headers.get("ETag")}
    for collection in ("codes", "models", "environments"):
        state[collection] = sorted(
            item["name"] for item in stack.call("GET", f"{workspace}/{collection}").json()["value"]
        )
    state["deployments"] = [
        d["name"] for d in stack.call("GET", f"{endpoint}/deployments").json()["value"]
    ]
    return state


def test_bad_input_is_one_line_and_changes_nothing(stack, workspace, weir, tmp_path):
    runtime = stack.register_runtime(workspace)
    endpoint = f"{workspace}/onlineEndpoints/my-endpoint"
    weir("online-endpoint", "create", "-f", "endpoint.yml")
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", **runtime},
    }
    response = stack.call("PUT", f"{endpoint}/deployments/blue", body)
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"] == (
        "Succeeded"
    )
    weir("online-endpoint", "update", "-n", "my-endpoint", "--traffic", "blue=100")
    before = assets_and_endpoint(stack, workspace, endpoint)

    # Azure's sample, its relative paths made absolute (the files live elsewhere).
    blue = (SAMPLE / "blue-deployment.yml").read_text().replace("../../", f"{ONLINE}/")
    files = {
        "typo.yml": blue.replace("instance_count: 1", "instance_cont: 1"),
        "no-script.yml": blue.replace("scoring_script: score.py", "scoring_script: scoring.py"),
        "bad-name.yml": blue.replace("name: blue", "name: blue_green"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cases = [
        (("online-deployment", "create", "-f", "typo.yml"), "instance_cont"),
        (("online-deployment", "create", "-f", "no-script.yml"), "scoring.py"),
        (("online-deployment", "create", "-f", "bad-name.yml"), "blue_green"),
        (("online-endpoint", "update", "-n", "my-endpoint", "--traffic", "blue=90"), "traffic"),
        (
            ("online-endpoint", "update", "-n", "my-endpoint", "--mirror-traffic", "blue=60"),
            "mirror",
        ),
    ]
    for args, named in cases:
        done = weir(*args, check=False, cwd=tmp_path)
        assert done.returncode != 0, args
        message = done.stderr.strip()
        print(message)
        assert "\n" not in message and message.startswith("ERROR: "), message
        assert named in message, (named, message)
        assert done.stdout == ""
    assert assets_and_endpoint(stack, workspace, endpoint) == before


def test_registered_assets_and_a_config_file(stack, workspace, weir, models, tmp_path):
    """Assets registered with the CLI, referenced as azureml:name:version from a deployment
    YAML; server and defaults from `weir configure` alone (no environment variables)."""
    config = tmp_path / "cli-config"
    configured = weir(
        "configure",
        "--url",
        stack.base_url,
        "--token",
        stack.token,
        "--ca-bundle",
        stack.ca_bundle,
        "--defaults",
        "group=rg1",
        f"workspace={stack.workspace_name}",
        f"subscription={stack.subscription}",
    )
    assert stack.token not in configured.stdout  # shown as "(set)", never echoed
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    for variable in (
        "WEIR_URL",
        "WEIR_TOKEN",
        "WEIR_CA_BUNDLE",
        "WEIR_SUBSCRIPTION",
        "WEIR_GROUP",
        "WEIR_WORKSPACE",
    ):
        weir.env.pop(variable)

    model = weir.json(
        "model", "create", "-n", "diabetes", "-v", "1", "--path", "../../model-1/model/"
    )
    assert (model["name"], model["version"]) == ("diabetes", "1")
    assert model["path"].endswith("/model")
    code = weir.json(
        "code", "create", "-n", "score", "-v", "1", "--path", "../../model-1/onlinescoring/"
    )
    assert code["version"] == "1"
    environment_file = tmp_path / "environment.yml"
    environment_file.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: sklearn-env\nversion: 1\n"
        "image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest\n"
        f"conda_file: {ONLINE}/model-1/environment/conda.yaml\n"
    )
    environment = weir.json("environment", "create", "-f", str(environment_file))
    assert (
        environment["image"].startswith("mcr.microsoft.com/")
        and "scikit-learn" in (environment["conda_file"])
    )
    assert weir.json("model", "list", "--query", "[].name") == ["diabetes"]
    assert weir.json("model", "show", "-n", "diabetes", "-v", "1", "--query", "version") == "1"

    weir("online-endpoint", "create", "-f", "endpoint.yml")
    deployment = tmp_path / "registered.yml"
    deployment.write_text(
        "name: registered\nendpoint_name: my-endpoint\nmodel: azureml:diabetes:1\n"
        "code_configuration:\n  code: azureml:score:1\n  scoring_script: score.py\n"
        "environment: azureml:sklearn-env:1\ninstance_type: Standard_DS3_v2\n"
        "instance_count: 1\n"
    )
    created = weir.json("online-deployment", "create", "-f", str(deployment), "--all-traffic")
    assert created["model"] == "azureml:diabetes:1"
    assert created["code_configuration"] == {
        "code": "azureml:score:1",
        "scoring_script": "score.py",
    }
    answer = weir.json("online-endpoint", "invoke", "-n", "my-endpoint", "-r", str(REQUEST))
    assert json.loads(answer) == pytest.approx(predictions(models["model-1"]))
    table = weir("online-deployment", "list", "-e", "my-endpoint", "-o", "table").stdout
    assert table.splitlines()[0].startswith("Name") and "registered" in table
