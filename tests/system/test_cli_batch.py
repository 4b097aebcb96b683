"""The ``weir`` CLI's batch commands against the real stack, as Azure's batch guide walks
them: a cluster, Azure's sample endpoint file, a deployment made its endpoint's default, a
local folder scored, the job streamed and its predictions downloaded, then deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.conftest import CONDA, ROOT, cli_runner

pytestmark = pytest.mark.system

ENDPOINT = (
    ROOT / "examples" / "batch" / "deploy-models" / "heart-classifier-mlflow" / "endpoint.yml"
)
ENDPOINT_NAME = "heart-classifier-batch"
COMPUTE = """\
$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
name: batch-cluster
type: amlcompute
size: STANDARD_DS3_v2
min_instances: 0
max_instances: 2
idle_time_before_scale_down: 120
tier: dedicated
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
endpoint_name: heart-classifier-batch
name: word-count
description: Counts the words of each file
type: model
model:
  name: word-counter
  path: model
  type: custom_model
code_configuration:
  code: code
  scoring_script: score.py
environment:
  name: minimal-batch
  image: python:3.11-slim
  conda_file: conda.yml
compute: azureml:batch-cluster
resources:
  instance_count: 1
settings:
  max_concurrency_per_instance: 1
  mini_batch_size: 2
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 1
    timeout: 60
  error_threshold: -1
  logging_level: info
"""
# One line per file: the model's label, the file's name and its number of words.
SCORE = """\
import glob
import os


def init():
    global label
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    found = glob.glob(os.path.join(model_dir, "**", "label.txt"), recursive=True)
    label = open(found[0]).read().strip()


def run(mini_batch):
    return [f"{label},{os.path.basename(p)},{len(open(p).read().split())}" for p in mini_batch]
"""
INPUTS = {"a.txt": "one two three", "b.txt": "four five", "c.txt": "six seven eight nine"}


@pytest.fixture
def weir(stack, workspace, tmp_path):
    return cli_runner(stack, tmp_path, tmp_path)


def write_files(folder: Path) -> Path:
    """The deployment's folder (YAML, model, code, conda file) and the input; the input's
    folder."""
    (folder / "compute.yml").write_text(COMPUTE)
    (folder / "deployment.yml").write_text(DEPLOYMENT)
    (folder / "conda.yml").write_text(CONDA)
    (folder / "model").mkdir()
    (folder / "model" / "label.txt").write_text("words\n")
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(SCORE)
    data = folder / "data"
    data.mkdir()
    for name, text in INPUTS.items():
        (data / name).write_text(text)
    return data


def test_the_batch_walk(weir, tmp_path):
    data = write_files(tmp_path)

    compute = weir.json("compute", "create", "-f", "compute.yml")
    assert (compute["type"], compute["max_instances"]) == ("amlcompute", 2)
    assert compute["idle_time_before_scale_down"] == 120

    endpoint = weir.json("batch-endpoint", "create", "-f", str(ENDPOINT))
    assert endpoint["name"] == ENDPOINT_NAME and endpoint["auth_mode"] == "aad_token"
    assert endpoint["scoring_uri"].endswith(f"/batchEndpoints/{ENDPOINT_NAME}/jobs")

    # A typo is refused naming the key, before anything is registered or sent.
    (tmp_path / "typo.yml").write_text(DEPLOYMENT.replace("mini_batch_size", "mini_batch_sise"))
    typo = weir("batch-deployment", "create", "-f", "typo.yml", check=False)
    assert typo.returncode != 0 and "settings.mini_batch_sise" in typo.stderr, typo.stderr
    assert weir.json("model", "list") == []

    deployment = weir.json("batch-deployment", "create", "-f", "deployment.yml", "--set-default")
    assert deployment["provisioning_state"] == "Succeeded"
    assert deployment["model"].startswith("azureml:word-counter:")
    assert deployment["compute"].endswith("/computes/batch-cluster")
    assert deployment["settings"]["retry_settings"] == {"max_retries": 1, "timeout": 60}
    assert deployment["settings"]["mini_batch_size"] == 2
    shown = weir.json("batch-endpoint", "show", "-n", ENDPOINT_NAME)
    assert shown["defaults"] == {"deployment_name": "word-count"}

    job = weir.json("batch-endpoint", "invoke", "-n", ENDPOINT_NAME, "--input", str(data))
    assert job["name"] and job["status"] in ("Queued", "Preparing", "Running")
    assert job["deployment_name"] == "word-count"
    (uploaded,) = [spec["path"] for spec in job["inputs"].values()]
    assert "/paths/LocalUpload/" in uploaded and uploaded.endswith("/data/")

    streamed = weir("job", "stream", "-n", job["name"])
    print(streamed.stdout)
    assert "mini-batch" in streamed.stdout
    assert "Status: Completed" in streamed.stdout
    assert weir.json("job", "show", "-n", job["name"])["status"] == "Completed"

    weir("job", "download", "-n", job["name"], "--output-name", "score", "--download-path", "out")
    predictions = tmp_path / "out" / "named-outputs" / "score" / "predictions.csv"
    expected = [f"words,{name},{len(text.split())}" for name, text in sorted(INPUTS.items())]
    assert predictions.read_text().splitlines() == expected

    listed = weir.json("batch-endpoint", "list-jobs", "-n", ENDPOINT_NAME, "--query", "[].name")
    assert listed == [job["name"]]
    by_deployment = weir.json(
        "batch-deployment", "list-jobs", "-n", "word-count", "-e", ENDPOINT_NAME
    )
    assert [j["name"] for j in by_deployment] == [job["name"]]
    assert job["name"] in weir.json("job", "list", "--query", "[].name")

    # Canceling a finished job changes nothing.
    weir("job", "cancel", "-n", job["name"])
    assert weir.json("job", "show", "-n", job["name"])["status"] == "Completed"

    weir("batch-deployment", "delete", "-n", "word-count", "-e", ENDPOINT_NAME, "--yes")
    assert weir.json("batch-deployment", "list", "-e", ENDPOINT_NAME) == []
    weir("batch-endpoint", "delete", "-n", ENDPOINT_NAME, "--yes")
    gone = weir("batch-endpoint", "show", "-n", ENDPOINT_NAME, check=False)
    assert gone.returncode != 0 and ENDPOINT_NAME in gone.stderr
    # The job outlives its endpoint.
    assert weir.json("job", "show", "-n", job["name"])["status"] == "Completed"
    assert json.loads(weir("compute", "show", "-n", "batch-cluster").stdout)["name"] == (
        "batch-cluster"
    )


def test_a_failing_job_streams_to_its_error(weir, tmp_path):
    data = write_files(tmp_path)
    (tmp_path / "code" / "score.py").write_text(
        "def init():\n    pass\n\n\ndef run(mini_batch):\n    raise ValueError('no words here')\n"
    )
    failing = DEPLOYMENT.replace("error_threshold: -1", "error_threshold: 0").replace(
        "max_retries: 1", "max_retries: 0"
    )
    (tmp_path / "deployment.yml").write_text(failing)
    weir("compute", "create", "-f", "compute.yml")
    weir("batch-endpoint", "create", "-f", str(ENDPOINT))

    # The server's refusal, as one line: the compute it names does not exist.
    missing = weir(
        "batch-deployment",
        "create",
        "-f",
        "deployment.yml",
        "--set",
        "compute=azureml:nope",
        check=False,
    )
    assert missing.returncode != 0 and missing.stdout == ""
    message = missing.stderr.strip()
    assert (
        message.startswith("ERROR: ")
        and "\n" not in message
        and "computes/nope' does not exist" in message
    ), message

    weir("batch-deployment", "create", "-f", "deployment.yml", "--set-default")
    job = weir.json("batch-endpoint", "invoke", "-n", ENDPOINT_NAME, "--input", str(data))
    streamed = weir("job", "stream", "-n", job["name"], check=False)
    assert streamed.returncode == 1, streamed.stderr
    assert "Status: Failed" in streamed.stdout and "no words here" in streamed.stdout
    assert streamed.stderr.startswith(f"ERROR: job {job['name']} failed: (ErrorThresholdExceeded)")
    assert "no words here" in streamed.stderr
    early = weir("job", "download", "-n", job["name"], "--output-name", "logs", check=False)
    assert early.returncode != 0 and "no output named 'logs'" in early.stderr
