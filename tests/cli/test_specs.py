"""Azure ML CLI v2 YAML to ARM bodies and back, without a server."""

import pytest

from cli import specs
from cli.errors import CliError


def spec(data: dict) -> specs.Spec:
    return specs.Spec(data, None)


def test_deployment_settings_map_to_arm_units_and_back():
    yaml_spec = spec(
        {
            "name": "blue",
            "endpoint_name": "ep",
            "instance_count": 2,
            "request_settings": {
                "request_timeout_ms": 3000,
                "max_concurrent_requests_per_instance": 4,
                "max_queue_wait_ms": 500,
            },
            "scale_settings": {
                "type": "target_utilization",
                "min_instances": 1,
                "max_instances": 3,
                "polling_interval": 10,
                "target_utilization_percentage": 70,
            },
            "liveness_probe": {"initial_delay": 5, "period": 10, "failure_threshold": 3},
            "environment_variables": {"LEVEL": 3},
            "egress_public_network_access": "disabled",
        }
    )
    specs.check_deployment(yaml_spec)
    body = specs.deployment_body(yaml_spec, "local", {"model": "azureml:m:1"})
    properties = body["properties"]
    assert body["sku"] == {"name": "Default", "capacity": 2}
    assert properties["requestSettings"] == {
        "maxConcurrentRequestsPerInstance": 4,
        "requestTimeout": "PT3S",
        "maxQueueWait": "PT0.5S",
    }
    assert properties["scaleSettings"] == {
        "scaleType": "TargetUtilization",
        "minInstances": 1,
        "maxInstances": 3,
        "targetUtilizationPercentage": 70,
        "pollingInterval": "PT10S",
    }
    assert properties["livenessProbe"] == {
        "initialDelay": "PT5S",
        "period": "PT10S",
        "failureThreshold": 3,
    }
    assert properties["environmentVariables"] == {"LEVEL": "3"}
    assert properties["egressPublicNetworkAccess"] == "Disabled"

    entity = specs.deployment_entity({"name": "blue", **body}, "ep")
    assert entity["request_settings"] == {
        "request_timeout_ms": 3000,
        "max_concurrent_requests_per_instance": 4,
        "max_queue_wait_ms": 500,
    }
    assert entity["scale_settings"]["polling_interval"] == 10
    assert entity["instance_count"] == 2


@pytest.mark.parametrize(
    "data, named",
    [
        (
            {"name": "blue", "endpoint_name": "ep", "scale_settings": {"kind": "x"}},
            "scale_settings.kind",
        ),
        ({"name": "b", "endpoint_name": "ep"}, "'b' is invalid"),
        ({"name": "blue"}, "endpoint_name"),
    ],
)
def test_deployment_mistakes_are_named(data, named):
    with pytest.raises(CliError, match=named.replace("'", ".")):
        specs.check_deployment(spec(data))


def test_endpoint_yaml_and_traffic_options():
    body = specs.endpoint_body(spec({"name": "my-endpoint", "auth_mode": "aml_token"}), "local")
    assert body == {"location": "local", "properties": {"authMode": "AMLToken"}}
    assert specs.traffic_map("blue=90 green=10", "--traffic") == {"blue": 90, "green": 10}
    assert specs.traffic_map("blue=90,green=10", "--traffic") == {"blue": 90, "green": 10}
    with pytest.raises(CliError, match="--traffic takes name=percent pairs, not 'blue'"):
        specs.traffic_map("blue", "--traffic")
    with pytest.raises(CliError, match="auth_mode must be one of"):
        specs.endpoint_body(spec({"name": "my-endpoint", "auth_mode": "password"}), "local")


def test_set_overrides_nested_keys_with_yaml_values():
    data = {"name": "blue", "request_settings": {"request_timeout_ms": 1000}}
    specs.apply_set(data, "instance_count=2")
    specs.apply_set(data, "request_settings.max_queue_wait_ms=250")
    specs.apply_set(data, "tags.owner=alice")
    assert data["instance_count"] == 2
    assert data["request_settings"] == {"request_timeout_ms": 1000, "max_queue_wait_ms": 250}
    assert data["tags"] == {"owner": "alice"}
