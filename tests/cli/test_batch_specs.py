"""Batch YAML (Azure's batchEndpoint, modelBatchDeployment, legacy batchDeployment and
amlCompute files) to ARM bodies and back, without a server."""

from pathlib import Path

import pytest

from cli import batch_specs, datastore, specs
from cli.errors import CliError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "batch"
WS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
DEPLOYMENTS = sorted(EXAMPLES.rglob("deployment.yml"))
ENDPOINTS = sorted(EXAMPLES.rglob("endpoint.yml"))


def spec(data: dict, source: Path | None = None) -> specs.Spec:
    return specs.Spec(data, source)


def references(loaded: specs.Spec) -> dict:
    """What cli/assets.py would register for the file's local paths."""
    found = {"model": loaded["model"]}
    if loaded.get("code_configuration"):
        found["code"] = "azureml:code-1:1"
    if loaded.get("environment"):
        found["environment"] = "azureml:env-1:1"
    return found


def test_azures_endpoint_files_load():
    assert len(ENDPOINTS) == 2
    for path in ENDPOINTS:
        body = batch_specs.batch_endpoint_body(specs.load(str(path)), "local")
        assert body == {
            "location": "local",
            "properties": {
                "authMode": "AADToken",
                "description": "A heart condition classifier for batch inference",
            },
        }


@pytest.mark.parametrize("path", DEPLOYMENTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_azures_deployment_files_load(path):
    loaded = specs.load(str(path))
    batch_specs.check_batch_deployment(loaded)
    body = batch_specs.batch_deployment_body(loaded, "local", references(loaded), WS)
    properties = body["properties"]
    assert properties["model"] == {"referenceType": "Id", "assetId": loaded["model"]}
    assert properties["compute"] == f"{WS}/computes/batch-cluster"
    assert properties["resources"] == {"instanceCount": 2}
    assert properties["miniBatchSize"] == 2
    assert properties["maxConcurrencyPerInstance"] == 2
    assert properties["retrySettings"] == {"maxRetries": 3, "timeout": "PT5M"}
    assert properties["errorThreshold"] == -1
    assert properties["loggingLevel"] == "Info"
    assert properties["outputAction"] in ("AppendRow", "SummaryOnly")
    if loaded.get("code_configuration"):
        assert properties["codeConfiguration"] == {
            "codeId": "azureml:code-1:1",
            "scoringScript": "batch_driver.py",
        }


def test_a_shown_deployment_goes_back_as_it_came():
    path = EXAMPLES / "deploy-models/heart-classifier-mlflow/deployment-custom/deployment.yml"
    loaded = specs.load(str(path))
    body = batch_specs.batch_deployment_body(loaded, "local", references(loaded), WS)
    entity = batch_specs.batch_deployment_entity({"name": loaded["name"], **body}, "ep")
    assert entity["settings"]["retry_settings"] == {"max_retries": 3, "timeout": 300}
    assert entity["settings"]["output_action"] == "append_row"
    assert entity["resources"] == {"instance_count": 2}
    again = batch_specs.batch_deployment_spec(entity)
    batch_specs.check_batch_deployment(again)
    resent = batch_specs.batch_deployment_body(again, "local", references(again), WS)
    assert resent["properties"] == body["properties"]


def test_the_legacy_form_has_its_settings_at_the_root():
    common = {
        "name": "legacy",
        "endpoint_name": "ep",
        "model": "azureml:m:1",
        "compute": "azureml:cpu",
        "resources": {"instance_count": 1},
    }
    settings = {
        "mini_batch_size": 5,
        "output_action": "append_row",
        "output_file_name": "out.csv",
        "retry_settings": {"max_retries": 1, "timeout": 90},
        "logging_level": "warning",
        "error_threshold": 3,
    }
    legacy = spec({**common, **settings})
    model = spec({**common, "type": "model", "settings": settings})
    for form in (legacy, model):
        batch_specs.check_batch_deployment(form)
    bodies = [
        batch_specs.batch_deployment_body(form, "local", {"model": "azureml:m:1"}, WS)
        for form in (legacy, model)
    ]
    assert bodies[0] == bodies[1]
    properties = bodies[0]["properties"]
    assert properties["retrySettings"] == {"maxRetries": 1, "timeout": "PT1M30S"}
    assert properties["outputFileName"] == "out.csv"
    assert properties["loggingLevel"] == "Warning"
    assert properties["compute"] == f"{WS}/computes/cpu"


@pytest.mark.parametrize(
    "seconds, iso",
    [
        (30, "PT30S"),
        (300, "PT5M"),
        (90, "PT1M30S"),
        (3600, "PT1H"),
        (86400, "P1D"),
        (0.5, "PT0.5S"),
    ],
)
def test_seconds_are_iso_durations_as_azure_writes_them(seconds, iso):
    assert batch_specs.iso_duration(seconds, "timeout") == iso
    assert batch_specs.duration_seconds(iso) == seconds


def test_timeout_must_be_seconds():
    with pytest.raises(CliError, match="retry_settings.timeout must be a number of seconds"):
        batch_specs.iso_duration("5m", "retry_settings.timeout")


DEPLOYMENT = {
    "name": "blue",
    "endpoint_name": "ep",
    "type": "model",
    "model": "azureml:m:1",
    "compute": "azureml:cpu",
}


@pytest.mark.parametrize(
    "data, named",
    [
        ({**DEPLOYMENT, "instance_cont": 1}, "unknown key 'instance_cont'"),
        ({**DEPLOYMENT, "settings": {"mini_batch": 2}}, "unknown key 'settings.mini_batch'"),
        (
            {**DEPLOYMENT, "settings": {"retry_settings": {"timout": 5}}},
            "unknown key 'settings.retry_settings.timout'",
        ),
        ({**DEPLOYMENT, "mini_batch_size": 2}, "'mini_batch_size'.*goes under settings"),
        ({**DEPLOYMENT, "model": {"path": "m", "flavor": "x"}}, "unknown key 'model.flavor'"),
        ({**DEPLOYMENT, "type": "pipeline"}, "pipeline component deployments"),
        ({k: v for k, v in DEPLOYMENT.items() if k != "compute"}, "'compute' is required"),
        ({k: v for k, v in DEPLOYMENT.items() if k != "model"}, "'model' is required"),
        (
            {**DEPLOYMENT, "settings": {"output_action": "summary_only", "output_file_name": "a"}},
            "output_file_name is for output_action append_row",
        ),
        (
            {**DEPLOYMENT, "settings": {"instance_count": 2}, "resources": {"instance_count": 1}},
            "settings.instance_count and resources",
        ),
        ({**DEPLOYMENT, "settings": {"logging_level": "loud"}}, "logging_level must be one of"),
        ({**DEPLOYMENT, "name": "b_1"}, "'b_1' is invalid"),
    ],
)
def test_deployment_mistakes_are_named_before_anything_is_sent(data, named):
    with pytest.raises(CliError, match=named):
        batch_specs.check_batch_deployment(spec(data, Path("/tmp/d.yml")))


def test_an_unknown_key_names_the_file():
    with pytest.raises(CliError, match=r"unknown key 'instance_cont' in /tmp/d.yml"):
        batch_specs.check_batch_deployment(
            spec({**DEPLOYMENT, "instance_cont": 1}, Path("/tmp/d.yml"))
        )


def test_endpoint_mistakes_are_named():
    with pytest.raises(CliError, match="unknown key 'default'"):
        batch_specs.batch_endpoint_body(spec({"name": "ep", "default": {}}), "local")
    with pytest.raises(CliError, match="unknown key 'defaults.deployment'"):
        batch_specs.batch_endpoint_body(
            spec({"name": "ep", "defaults": {"deployment": "blue"}}), "local"
        )
    with pytest.raises(CliError, match="aad_token only"):
        batch_specs.batch_endpoint_body(spec({"name": "ep", "auth_mode": "key"}), "local")


def test_endpoint_defaults_and_round_trip():
    body = batch_specs.batch_endpoint_body(
        spec({"name": "ep", "defaults": {"deployment_name": "blue"}, "tags": {"n": 1}}), "local"
    )
    assert body["properties"]["defaults"] == {"deploymentName": "blue"}
    assert body["tags"] == {"n": "1"}
    entity = batch_specs.batch_endpoint_entity({"name": "ep", **body})
    assert entity["defaults"] == {"deployment_name": "blue"}
    assert batch_specs.batch_endpoint_body(batch_specs.batch_endpoint_spec(entity), "local") == (
        body
    )


def test_aml_compute_yaml():
    body = batch_specs.compute_body(
        spec(
            {
                "$schema": "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json",
                "name": "batch-cluster",
                "type": "amlcompute",
                "size": "STANDARD_DS3_v2",
                "min_instances": 0,
                "max_instances": 5,
                "idle_time_before_scale_down": 120,
                "tier": "low_priority",
            }
        ),
        "local",
    )
    assert body == {
        "location": "local",
        "properties": {
            "computeType": "AmlCompute",
            "properties": {
                "vmSize": "STANDARD_DS3_v2",
                "vmPriority": "LowPriority",
                "scaleSettings": {
                    "maxNodeCount": 5,
                    "minNodeCount": 0,
                    "nodeIdleTimeBeforeScaleDown": "PT2M",
                },
            },
        },
    }
    entity = batch_specs.compute_entity({"name": "batch-cluster", **body})
    assert entity["type"] == "amlcompute" and entity["tier"] == "low_priority"
    assert entity["idle_time_before_scale_down"] == 120 and entity["max_instances"] == 5
    with pytest.raises(CliError, match="unknown key 'max_nodes'"):
        batch_specs.compute_body(spec({"name": "c1", "type": "amlcompute", "max_nodes": 2}), "l")
    with pytest.raises(CliError, match="not 'kubernetes'"):
        batch_specs.compute_body(spec({"name": "c1", "type": "kubernetes"}), "l")


def test_jobs_read_alike_from_arm_and_from_an_invocation():
    tags = {"azureml.deploymentname": "blue", "azureml.batchrun": "true"}
    arm = {
        "name": "job-1",
        "properties": {
            "status": "Running",
            "experimentName": "ep",
            "tags": tags,
            "properties": {"azureml.endpointname": "ep"},
            "inputs": {"UriFolder": {"jobInputType": "uri_folder", "uri": "azureml://in/"}},
            "outputs": {"score": {"jobOutputType": "uri_folder", "uri": "azureml://out/"}},
        },
    }
    invoked = {
        "name": "job-1",
        "properties": {
            "status": "Running",
            "tags": tags,
            "properties": {"azureml.endpointname": "ep"},
            "inputData": {"UriFolder": {"jobInputType": "UriFolder", "uri": "azureml://in/"}},
            "outputData": {"score": {"jobOutputType": "UriFolder", "uri": "azureml://out/"}},
        },
    }
    shown, answered = batch_specs.job_entity(arm), batch_specs.job_entity(invoked)
    for job in (shown, answered):
        assert job["status"] == "Running"
        assert (job["endpoint_name"], job["deployment_name"]) == ("ep", "blue")
        assert job["inputs"] == {"UriFolder": {"type": "uri_folder", "path": "azureml://in/"}}
        assert job["outputs"]["score"] == {"type": "uri_folder", "path": "azureml://out/"}


def test_invocation_body():
    body = batch_specs.invocation_body(
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/h/data/",
        "uri_folder",
        job_name="j1",
        mini_batch_size=2,
        output_path="azureml://datastores/workspaceblobstore/paths/out/",
    )
    assert body == {
        "properties": {
            "inputData": {
                "UriFolder": {
                    "jobInputType": "UriFolder",
                    "uri": "azureml://datastores/workspaceblobstore/paths/LocalUpload/h/data/",
                }
            },
            "name": "j1",
            "miniBatchSize": 2,
            "outputData": {
                "score": {
                    "jobOutputType": "UriFolder",
                    "uri": "azureml://datastores/workspaceblobstore/paths/out/",
                }
            },
        }
    }


def test_datastore_uris():
    assert datastore.parse_uri(
        "azureml://datastores/workspaceblobstore/paths/azureml/j/score/"
    ) == (
        "workspaceblobstore",
        "azureml/j/score/",
    )
    long_form = "azureml://subscriptions/s/resourcegroups/rg/workspaces/w/datastores/ds/paths/a/b"
    assert datastore.parse_uri(long_form) == ("ds", "a/b")
    with pytest.raises(CliError, match="not a datastore URI"):
        datastore.parse_uri("https://example.com/x")
