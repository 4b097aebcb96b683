"""The inference server, as a real process: Azure's scoring contract, errors, keep-alive."""

import http.client
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy
import pytest
import requests

from tests.dataplane.conftest import EXAMPLES, SLOW

SAMPLE = json.loads((EXAMPLES / "model-1" / "sample-request.json").read_text())


def predictions(model_dir: Path, data) -> list:
    model = joblib.load(model_dir / "sklearn_regression_model.pkl")
    return model.predict(numpy.array(data)).tolist()


def write(tmp_path: Path, source: str) -> Path:
    script = tmp_path / "score.py"
    script.write_text(source)
    return script


def test_azures_sample_script_serves_the_models_predictions(replica, models):
    served = replica(EXAMPLES / "model-1" / "onlinescoring" / "score.py", models["model-1"].parent)
    response = requests.post(f"{served.url}/score", json=SAMPLE)
    assert response.status_code == 200
    assert response.json() == pytest.approx(predictions(models["model-1"], SAMPLE["data"]))
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert requests.get(f"{served.url}/").text == "Healthy"
    assert requests.get(f"{served.url}/readiness").status_code == 200
    assert requests.get(f"{served.url}/swagger.json").status_code == 404


def test_a_script_with_inference_schema_decorators_runs_unmodified(replica, models):
    served = replica(EXAMPLES / "schema" / "onlinescoring" / "score.py", models["model-1"].parent)
    row = [[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]
    response = requests.post(f"{served.url}/score", json={"data": row})
    assert response.status_code == 200, response.text
    assert response.json() == pytest.approx(predictions(models["model-1"], row))
    swagger = requests.get(f"{served.url}/swagger.json").json()
    assert swagger["swagger"] == "2.0"
    assert "data" in swagger["definitions"]["ServiceInput"]["properties"]
    missing = requests.post(f"{served.url}/score", json={"other": 1})
    assert missing.status_code == 400 and "data" in missing.json()["message"]
    not_json = requests.post(
        f"{served.url}/score", data="x", headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 415


def test_raw_http_scripts_choose_their_response(replica, tmp_path):
    script = write(
        tmp_path,
        "from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp\n"
        "from azureml_inference_server_http.api.aml_response import AMLResponse\n"
        "def init():\n    pass\n"
        "@rawhttp\n"
        "def run(request):\n"
        "    if request.method == 'GET':\n"
        "        return AMLResponse({'args': request.args}, 200, json_str=True)\n"
        "    body = request.get_data(as_text=True)\n"
        "    return AMLResponse(body[::-1], 201, {'X-Reversed': 'yes'})\n",
    )
    served = replica(script, tmp_path)
    posted = requests.post(f"{served.url}/score", data="abc")
    assert posted.status_code == 201 and posted.text == "cba"
    assert posted.headers["X-Reversed"] == "yes"
    got = requests.get(f"{served.url}/score?x=1")
    assert got.json() == {"args": {"x": "1"}}


def test_an_exception_in_run_is_a_500_with_the_message_and_the_server_goes_on(replica, tmp_path):
    script = write(
        tmp_path,
        "def init():\n    pass\n"
        "def run(raw):\n"
        "    if raw == 'boom':\n        raise ValueError('bad input: boom')\n"
        "    return {'ok': raw}\n",
    )
    served = replica(script, tmp_path)
    failed = requests.post(f"{served.url}/score", data="boom")
    assert failed.status_code == 500
    assert "bad input: boom" in failed.json()["message"]
    assert failed.headers["x-ms-run-function-failed"] == "True"
    assert requests.post(f"{served.url}/score", data="fine").json() == {"ok": "fine"}
    assert "ValueError: bad input: boom" in served.log_text()


def test_an_init_that_raises_stops_the_replica_with_the_error(replica, tmp_path):
    script = write(
        tmp_path, "def init():\n    raise RuntimeError('no model here')\ndef run(d):\n    pass\n"
    )
    served = replica(script, tmp_path, wait=False)
    assert served.process.wait(timeout=30) != 0
    assert "no model here" in served.log_text()


def test_connections_are_kept_alive_and_ids_echoed(replica, tmp_path):
    script = write(tmp_path, "def init():\n    pass\ndef run(raw):\n    return raw\n")
    served = replica(script, tmp_path)
    connection = http.client.HTTPConnection("127.0.0.1", served.port)
    for index in range(3):
        connection.request("POST", "/score", body=str(index), headers={"x-request-id": f"r{index}"})
        response = connection.getresponse()
        assert response.read() == json.dumps(str(index)).encode()
        assert response.getheader("x-request-id") == f"r{index}"
        assert response.getheader("connection") is None  # HTTP/1.1 keep-alive
    sockets = {connection.sock.getsockname()}
    connection.request("GET", "/")
    connection.getresponse().read()
    assert {connection.sock.getsockname()} == sockets
    connection.close()


def test_concurrent_requests_with_several_in_flight(replica, tmp_path):
    script = write(
        tmp_path,
        "import time\ndef init():\n    pass\ndef run(raw):\n    time.sleep(0.2)\n    return raw\n",
    )
    served = replica(script, tmp_path, concurrency=4)
    with ThreadPoolExecutor(4) as pool:
        bodies = list(
            pool.map(lambda i: requests.post(f"{served.url}/score", data=str(i)).json(), range(4))
        )
    assert bodies == ["0", "1", "2", "3"]


def test_a_stopping_replica_finishes_its_request_and_refuses_new_ones(replica, tmp_path):
    served = replica(write(tmp_path, SLOW), tmp_path, 2)
    with requests.Session() as idle:  # a keep-alive connection with nothing in flight
        assert idle.post(f"{served.url}/score", "hello").text == '"ok"'
        result = {}

        def slow():
            result["answer"] = requests.post(f"{served.url}/score", "sleep:2")

        caller = threading.Thread(target=slow)
        caller.start()
        time.sleep(0.5)  # the slow request is in run()
        served.process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", served.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        deadline = time.monotonic() + 5
        while not refused() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert refused()
        caller.join()
        assert result["answer"].status_code == 200 and result["answer"].text == '"slept"'
        assert result["answer"].headers["connection"] == "close"
        assert served.process.wait(timeout=10) == 0
