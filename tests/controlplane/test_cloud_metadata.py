"""ARM's cloud-metadata document, which points Azure's SDKs at Weir
(``ARM_CLOUD_METADATA_URL``); the SDK's own reading of it is exercised by
tests/system/test_azure_ai_ml.py."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import assert_arm_error

pytestmark = pytest.mark.django_db


@override_settings(WEIR_BLOB_URL="https://localhost:8444")
def test_it_names_weir_as_a_cloud_without_a_token():
    response = APIClient().get("/metadata/endpoints?api-version=2019-05-01", secure=True)
    assert response.status_code == 200
    [cloud] = response.json()  # 2019-05-01 answers with a list of clouds
    assert cloud["name"] == "Weir"
    assert cloud["resourceManager"] == "https://testserver/"
    assert cloud["authentication"]["loginEndpoint"] == "https://testserver/"
    assert cloud["authentication"]["audiences"] == ["https://testserver/"]
    assert cloud["suffixes"]["storage"] == "localhost:8444"
    # The SDK takes the cloud whose resource manager is part of the metadata URL it was given.
    assert cloud["resourceManager"] in "https://testserver/metadata/endpoints?api-version=2019"


def test_newer_versions_answer_with_the_one_cloud():
    response = APIClient().get("/metadata/endpoints?api-version=2022-09-01", secure=True)
    assert response.status_code == 200
    assert response.json()["name"] == "Weir"


def test_the_api_version_is_required_and_checked():
    assert_arm_error(
        APIClient().get("/metadata/endpoints"), 400, "MissingApiVersionParameter", "api-version"
    )
    assert_arm_error(
        APIClient().get("/metadata/endpoints?api-version=latest"),
        400,
        "InvalidApiVersionParameter",
        "api-version",
    )
