"""Train the example models: two scikit-learn regressions on the diabetes data that ships
with scikit-learn (nothing is downloaded). ``python examples/make_models.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, Ridge

ONLINE = Path(__file__).resolve().parent / "online"
MODELS = {
    "model-1": Ridge(alpha=0.5),  # v1
    "model-2": Lasso(alpha=0.1),  # v2: another estimator, other predictions
}
MODEL_FILE = "model/sklearn_regression_model.pkl"


def make(root: Path = ONLINE) -> dict[str, Path]:
    """Fit each model and write it to ``{root}/{name}/model/...``; return the model dirs."""
    features, target = load_diabetes(return_X_y=True)
    written = {}
    for name, estimator in MODELS.items():
        estimator.fit(features, target)
        path = root / name / MODEL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, path)
        written[name] = path.parent
    return written


if __name__ == "__main__":
    for name, directory in make(Path(sys.argv[1]) if len(sys.argv) > 1 else ONLINE).items():
        print(f"{name}: {directory}")
