"""MLflow models the tests save themselves, as a user's training run does: a scikit-learn
regression on the diabetes data that ships with scikit-learn (nothing is downloaded), saved
by ``mlflow.sklearn.save_model`` with its signature and an input example."""

from __future__ import annotations

from pathlib import Path

# The rows the tests score: the first ones of the data the models were fitted on.
ROWS = 3


def features(tensor: bool = False):
    """The diabetes features: a DataFrame with named columns, or (``tensor``) an ndarray."""
    from sklearn.datasets import load_diabetes

    frame, _ = load_diabetes(return_X_y=True, as_frame=True)
    return frame.to_numpy() if tensor else frame


def save_diabetes_model(target: Path, tensor: bool = False) -> Path:
    """Fit a Ridge regression and save it as an MLflow model folder at ``target``. Its
    signature has named double columns, or (``tensor``) one float64 tensor of shape (-1, 10).
    The requirements MLflow writes for it (mlflow, scikit-learn, …) are the ones its no-code
    deployment installs."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    inputs = features(tensor)
    _, labels = load_diabetes(return_X_y=True, as_frame=True)
    estimator = Ridge(alpha=0.5).fit(inputs, labels)
    mlflow.sklearn.save_model(
        estimator,
        str(target),
        signature=infer_signature(inputs, estimator.predict(inputs)),
        input_example=inputs[:2],
        # Azure's samples' format; MLflow's default (skops) needs one more package.
        serialization_format="cloudpickle",
    )
    return target


def split_request(rows: int = ROWS) -> dict:
    """Azure's request for an MLflow model: ``input_data`` in pandas' split orient."""
    frame = features()[:rows]
    return {
        "input_data": {
            "columns": list(frame.columns),
            "index": list(range(rows)),
            "data": frame.to_numpy().tolist(),
        }
    }


def local_predictions(folder: Path, rows: int = ROWS, tensor: bool = False) -> list:
    """What the saved model predicts for the first ``rows`` rows, loaded here as a user
    would load it (``mlflow.sklearn.load_model``)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(folder)).predict(features(tensor)[:rows]).tolist()
