"""The replica inference server: runs one scoring script with the contract of Azure's
``azureml-inference-server-http`` (``init()``, ``run()``, ``/score``, ``/swagger.json``)."""
