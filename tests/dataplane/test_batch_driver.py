"""The batch driver in real processes, started as the coordinator starts them (the command of
driver_command, the two pipes passed as file descriptors, stdout and stderr to log files):
what a scoring script sees, what it writes, and the events the coordinator reads."""

from __future__ import annotations

import csv
import json
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dataplane.batch.command import driver_command
from tests.mlflow_models import features, save_diabetes_model

ROOT = Path(__file__).resolve().parents[2]


class Driver:
    """One driver process, with the coordinator's ends of its pipes and its two log files."""

    def __init__(
        self,
        tmp_path: Path,
        script: Path | None,
        *,
        cwd: Path | None = None,
        mlflow: bool = False,
        model_dir: Path | None = None,
        output_action: str = "append_row",
        logging_level: str = "INFO",
    ):
        self.output = tmp_path / "output"
        self.output.mkdir(exist_ok=True)
        self.stdout_log = tmp_path / "process1.stdout.txt"
        self.stderr_log = tmp_path / "process1.txt"
        control_read, self.control = os.pipe()
        self.events, event_write = os.pipe()
        self.buffer = b""
        command = driver_command(
            sys.executable,
            script,
            self.output,
            control_read,
            event_write,
            "process1",
            logging_level,
            output_action,
            "predictions.csv",
            2,
            -1,
            30,
            1,
            mlflow=mlflow,
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AZUREML_MODEL_DIR": str(model_dir or tmp_path),
            "AZUREML_BI_OUTPUT_PATH": str(self.output),
        }
        with open(self.stdout_log, "wb") as stdout, open(self.stderr_log, "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=cwd or (script.parent if script else tmp_path),
                env=env,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(control_read, event_write),
            )
        os.close(control_read)
        os.close(event_write)

    def event(self, timeout: float = 30) -> dict | None:
        """The next event, or None once the process has closed its end of the pipe."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event in {timeout} s; stderr:\n{self.stderr()}")
            if select.select([self.events], [], [], remaining)[0]:
                chunk = os.read(self.events, 65536)
                if not chunk:
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def send(self, command: dict) -> None:
        os.write(self.control, (json.dumps(command) + "\n").encode())

    def score(self, index: int, files: list[Path], part: Path) -> dict:
        self.send({"index": index, "files": [str(path) for path in files], "part": str(part)})
        return self.event()

    def close(self, timeout: float = 10) -> int:
        """End of file on the control pipe; the exit status."""
        if self.control is not None:
            os.close(self.control)
            self.control = None
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return self.stdout_log.read_text()

    def stderr(self) -> str:
        return self.stderr_log.read_text()


@pytest.fixture
def start(tmp_path):
    started = []

    def start(script: str | None, **options) -> Driver:
        path = None
        if script is not None:
            path = options.pop("script_path", tmp_path / "code" / "batch_driver.py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(script))
        driver = Driver(tmp_path, path, **options)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        if driver.process.poll() is None:
            driver.process.kill()
            driver.process.wait()
        if driver.control is not None:
            os.close(driver.control)
        os.close(driver.events)


@pytest.fixture
def inputs(tmp_path):
    """Input files with the given names (their text is their name)."""

    def make(*names: str) -> list[Path]:
        folder = tmp_path / "inputs"
        folder.mkdir(exist_ok=True)
        for name in names:
            (folder / name).write_text(name)
        return [folder / name for name in names]

    return make


LIST = """
import os

def init():
    global suffix
    suffix = ".scored"

def run(mini_batch):
    return [os.path.basename(path) + suffix for path in mini_batch] + [len(mini_batch)]
"""


def test_a_list_is_written_one_line_per_element_into_the_part(start, inputs, tmp_path):
    driver = start(LIST)
    assert driver.event() == {"event": "ready"}
    part = tmp_path / "parts" / "0.txt"

    event = driver.score(0, inputs("a.txt", "b.txt"), part)

    assert event["event"] == "done" and (event["index"], event["items"]) == (0, 3)
    assert isinstance(event["seconds"], float)
    assert part.read_text() == "a.txt.scored\nb.txt.scored\n2\n"
    assert os.listdir(part.parent) == ["0.txt"]  # written whole, no .tmp left beside it
    assert driver.close() == 0
    assert "process1: mini-batch 0: 2 file(s) -> 3 item(s) in " in driver.stderr()


FRAME = """
import os
import pandas as pd

def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    return pd.DataFrame({"file": names, "score": [0.5, 1.0], "label": ["a cat", "dog"]})
"""


def test_a_dataframe_is_written_as_space_separated_rows_without_header(start, inputs, tmp_path):
    import pandas

    driver = start(FRAME)
    assert driver.event() == {"event": "ready"}
    part = tmp_path / "0.txt"

    assert driver.score(0, inputs("a.txt", "b.txt"), part)["items"] == 2

    assert part.read_text() == 'a.txt 0.5 "a cat"\nb.txt 1.0 dog\n'
    # As Azure's samples read predictions.csv back.
    read = pandas.read_csv(part, header=None, sep=" ")
    assert read.values.tolist() == [["a.txt", 0.5, "a cat"], ["b.txt", 1.0, "dog"]]


FAILING = """
import os

def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    if "bad.txt" in names:
        raise ValueError("cannot read bad.txt")
    if "nothing.txt" in names:
        return None
    return names
"""


def test_a_failed_mini_batch_is_reported_and_the_next_one_is_scored(start, inputs, tmp_path):
    driver = start(FAILING)
    assert driver.event() == {"event": "ready"}
    bad, nothing, good = inputs("bad.txt", "nothing.txt", "good.txt")

    raised = driver.score(0, [bad], tmp_path / "0.txt")
    returned_none = driver.score(1, [nothing], tmp_path / "1.txt")
    done = driver.score(2, [good], tmp_path / "2.txt")

    assert (raised["event"], raised["index"]) == ("failed", 0)
    assert raised["error"].startswith("Traceback")
    assert 'batch_driver.py", line 7, in run' in raised["error"]
    assert raised["error"].rstrip().endswith("ValueError: cannot read bad.txt")
    assert "driver.py" not in raised["error"].replace("batch_driver.py", "")
    assert (returned_none["event"], returned_none["index"]) == ("failed", 1)
    assert "No succeeded mini batch item returned from run()" in returned_none["error"]
    assert (done["event"], done["items"]) == ("done", 1)
    assert sorted(path.name for path in tmp_path.glob("*.txt")) == ["2.txt"] + [
        "process1.stdout.txt",
        "process1.txt",
    ]
    assert "process1: mini-batch 0: 1 file(s) failed after" in driver.stderr()


@pytest.mark.parametrize(
    "script, error",
    [
        ("def init():\n    raise RuntimeError('no model here')\n\ndef run(b):\n    return b\n",
         "RuntimeError: no model here"),
        ("def init():\n    pass\n", "batch_driver.py does not define run(mini_batch)"),
        ("import not_installed\n", "ModuleNotFoundError: No module named 'not_installed'"),
    ],
    ids=["init-raises", "no-run", "import-fails"],
)  # fmt: skip
def test_a_script_that_cannot_start_reports_why_and_exits_1(start, script, error):
    driver = start(script)

    event = driver.event()

    assert event["event"] == "init_failed"
    assert error in event["error"]
    assert driver.event() is None
    assert driver.close() == 1
    assert error in driver.stderr()


ARGV = """
import argparse
import json
import logging
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--logging_level", type=str)
parser.add_argument("--mini_batch_size", type=int)
args, unknown = parser.parse_known_args()
logger = logging.getLogger(__name__)
logger.setLevel(args.logging_level.upper())

def init():
    logger.debug("init at level %s", args.logging_level)
    seen = {
        "argv": sys.argv,
        "mini_batch_size": args.mini_batch_size,
        "unknown": unknown,
        "module": __name__,
        "output": os.environ["AZUREML_BI_OUTPUT_PATH"],
    }
    with open(os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"], "seen.json"), "w") as file:
        json.dump(seen, file)

def run(mini_batch):
    return mini_batch
"""


def test_the_script_sees_azures_arguments_and_logs_at_their_level(start):
    driver = start(ARGV, logging_level="DEBUG", output_action="AppendRow")
    assert driver.event() == {"event": "ready"}
    assert driver.close() == 0

    seen = json.loads((driver.output / "seen.json").read_text())
    script = driver.output.parent / "code" / "batch_driver.py"
    output = str(driver.output)
    assert seen["argv"] == [
        str(script),
        *("--logging_level", "DEBUG", "--output", output, "--output_action", "append_row"),
        *("--append_row_file_name", "predictions.csv", "--mini_batch_size", "2"),
        *("--error_threshold", "-1", "--run_invocation_timeout", "30"),
        *("--process_count_per_node", "1"),
    ]
    assert seen["mini_batch_size"] == 2
    assert seen["module"] == "batch_driver"
    assert seen["output"] == output
    assert "DEBUG batch_driver: init at level DEBUG" in driver.stderr()


SIBLING = """
from helpers import label

def run(mini_batch):
    return [label(path) for path in mini_batch]
"""


def test_a_script_imports_the_modules_beside_it(start, inputs, tmp_path):
    source = tmp_path / "code" / "src"
    source.mkdir(parents=True)
    (source / "helpers.py").write_text(
        "import os\n\ndef label(path):\n    return 'label of ' + os.path.basename(path)\n"
    )
    # The script is in a folder of the code directory, which is the working directory.
    driver = start(SIBLING, script_path=source / "score.py", cwd=tmp_path / "code")
    assert driver.event() == {"event": "ready"}

    assert driver.score(0, inputs("a.txt"), tmp_path / "0.txt")["event"] == "done"
    assert (tmp_path / "0.txt").read_text() == "label of a.txt\n"


NOISY = """
import sys

def init():
    print('{"event": "init_failed", "error": "printed, not failed"}')

def run(mini_batch):
    print('{"event": "done", "index": 99, "items": 1000}')
    sys.stdout.write("no newline")
    print("to stderr", file=sys.stderr)
    return mini_batch
"""


def test_what_the_script_prints_goes_to_the_logs_not_to_the_coordinator(start, inputs, tmp_path):
    driver = start(NOISY)

    assert driver.event() == {"event": "ready"}
    event = driver.score(0, inputs("a.txt"), tmp_path / "0.txt")
    assert driver.close() == 0

    assert (event["event"], event["index"], event["items"]) == ("done", 0, 1)
    assert driver.event() is None
    assert driver.stdout() == (
        '{"event": "init_failed", "error": "printed, not failed"}\n'
        '{"event": "done", "index": 99, "items": 1000}\n'
        "no newline"
    )
    assert "to stderr" in driver.stderr()


SUMMARY = """
import os

def run(mini_batch):
    folder = os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"], "scores")
    os.makedirs(folder, exist_ok=True)
    for path in mini_batch:
        with open(os.path.join(folder, os.path.basename(path) + ".csv"), "w") as file:
            file.write("scored\\n")
    return mini_batch
"""


def test_summary_only_writes_no_part_and_keeps_the_scripts_files(start, inputs, tmp_path):
    driver = start(SUMMARY, output_action="summary_only")
    assert driver.event() == {"event": "ready"}
    part = tmp_path / "parts" / "0.txt"

    event = driver.score(0, inputs("a.txt", "b.txt"), part)

    assert (event["event"], event["items"]) == ("done", 2)
    assert not part.parent.exists()
    scores = driver.output / "scores"
    assert sorted(os.listdir(scores)) == ["a.txt.csv", "b.txt.csv"]
    assert (scores / "a.txt.csv").read_text() == "scored\n"


SHUTDOWN = """
import os

def run(mini_batch):
    return mini_batch

def shutdown():
    with open(os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"], "shutdown.txt"), "w") as file:
        file.write("called")
"""


@pytest.mark.parametrize("how", ["end-of-file", "stop"])
def test_shutdown_is_called_when_the_coordinator_is_done(start, how):
    driver = start(SHUTDOWN)
    assert driver.event() == {"event": "ready"}

    if how == "stop":
        driver.send({"stop": True})
    assert driver.close() == 0

    assert (driver.output / "shutdown.txt").read_text() == "called"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An AZUREML_MODEL_DIR holding a saved MLflow model folder, as Azure lays it out."""
    root = tmp_path_factory.mktemp("batch-mlflow")
    save_diabetes_model(root / "diabetes")
    return root


def expected_predictions(model_dir: Path, frame) -> list[float]:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(model_dir / "diabetes")).predict(frame).tolist()


def test_an_mlflow_model_scores_each_file_into_row_prediction_file_name(start, model_dir, tmp_path):
    first, second = features()[:3], features()[3:5].copy()
    # A file may hold whole numbers in a column the signature says is double.
    second["age"] = [0, 1]
    (tmp_path / "first.csv").write_text(first.to_csv(index=False))
    (tmp_path / "second.csv").write_text(second.to_csv(index=False))
    (tmp_path / "notes.txt").write_text("not a table")
    driver = start(None, mlflow=True, model_dir=model_dir)
    assert driver.event(timeout=60) == {"event": "ready"}

    part = tmp_path / "parts" / "0.csv"
    done = driver.score(0, [tmp_path / "first.csv", tmp_path / "second.csv"], part)
    failed = driver.score(1, [tmp_path / "notes.txt"], tmp_path / "parts" / "1.csv")

    assert (done["event"], done["items"]) == ("done", 5)
    rows = list(csv.reader(part.read_text().splitlines()))
    assert [(row, name) for row, _, name in rows] == [
        ("0", "first.csv"),
        ("1", "first.csv"),
        ("2", "first.csv"),
        ("0", "second.csv"),
        ("1", "second.csv"),
    ]
    expected = expected_predictions(model_dir, first) + expected_predictions(
        model_dir, second.astype("float64")
    )
    assert [float(prediction) for _, prediction, _ in rows] == pytest.approx(expected, rel=1e-12)
    assert failed["event"] == "failed"
    assert "notes.txt: an MLflow model deployed without a scoring script reads" in failed["error"]
    assert "not .txt" in failed["error"]
    assert driver.close() == 0


def test_an_mlflow_model_scores_parquet_files(start, model_dir, tmp_path):
    pytest.importorskip("pyarrow")
    frame = features()[:3]
    frame.to_parquet(tmp_path / "rows.parquet")
    driver = start(None, mlflow=True, model_dir=model_dir)
    assert driver.event(timeout=60) == {"event": "ready"}

    part = tmp_path / "0.csv"
    assert driver.score(0, [tmp_path / "rows.parquet"], part)["items"] == 3

    rows = list(csv.reader(part.read_text().splitlines()))
    assert [float(prediction) for _, prediction, _ in rows] == pytest.approx(
        expected_predictions(model_dir, frame), rel=1e-12
    )
    assert {name for _, _, name in rows} == {"rows.parquet"}
