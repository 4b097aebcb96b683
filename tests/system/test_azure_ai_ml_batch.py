"""Azure's batch endpoint samples, walked with Azure's ML SDK v2 (azure-ai-ml, ``MLClient``)
unchanged, in a virtualenv of its own, against the real stack: tests/clients/sdk_v2_batch.py
is the walk, written as an Azure user writes it; this test prepares the models it registers
(tests/batch_samples.py), runs it, checks every step's result, and compares what the jobs
wrote with what the samples' own scripts write here."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.batch_samples import EXAMPLES, prepare
from tests.system.test_azure_ai_ml import CLIENT_PYTHON, run_client, walked

STEPS = [
    "ml_client",
    "compute_create",
    "model_create",
    "endpoint_create",
    "deployment_create",
    "set_default",
    "invoke",
    "job_completes",
    "job_stream",
    "job_download",
    "list_jobs",
    "invoke_unknown_deployment",
    "slow_deployment_create",
    "cancel",
    "mlflow_model_create",
    "mlflow_endpoint_create",
    "mlflow_deployment_create",
    "mlflow_invoke",
    "mlflow_stream",
    "mlflow_job_completes",
    "mlflow_download",
    "data_asset_invoke",
    "failing_deployment_create",
    "failing_script",
    "delete_deployment",
    "delete_endpoints",
    "jobs_survive",
]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZURE_AI_ML_PYTHON is not set: run the suite with bin/test"
    ),
]


def test_the_sdk_v2_walks_azures_batch_samples(stack, workspace, tmp_path):
    samples = prepare(tmp_path / "samples")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    done = run_client(
        stack,
        "sdk_v2_batch.py",
        timeout=3600,
        cwd=tmp_path,
        WEIR_EXAMPLES=str(EXAMPLES),
        WEIR_BATCH_MODEL=str(samples.model),
        WEIR_MLFLOW_MODEL=str(samples.mlflow_model),
        WEIR_DOWNLOADS=str(downloads),
        # Read when azure.ai.ml is imported: jobs.stream polls every second, not every 2-60 s.
        AZUREML_RUN_POLLING_INTERVAL_MIN="1",
        AZUREML_RUN_POLLING_INTERVAL_MAX="1",
    )
    details = walked(done, STEPS)

    # Sample A: the job's parquet files are those its unchanged script writes in this process.
    files = details["job_download"]["files"]
    for name, expected in samples.parquet.items():
        assert pd.read_parquet(files[name]["path"]).equals(pd.read_parquet(expected)), name

    # Sample B: one line per input row, `row,prediction,file` with no header, read as Azure's
    # notebook reads it; in input order (Azure appends mini-batches as they finish, Weir
    # merges them in order).
    predictions = pd.read_csv(
        details["mlflow_download"]["files"]["predictions.csv"]["path"],
        names=["row", "prediction", "file"],
    )
    got = list(predictions.itertuples(index=False, name=None))
    assert sorted(got) == sorted(samples.predictions)
    assert got == sorted(got, key=lambda row: (row[2], row[0]))
    # The same files as a data asset give the same predictions.
    by_asset = details["data_asset_invoke"]["files"]["predictions.csv"]["sha256"]
    assert by_asset == details["mlflow_download"]["files"]["predictions.csv"]["sha256"]
