"""scikit-learn's MLPClassifier on dltool's digits split, early stopping on: one side of
benches/end_to_end.py. Prints {"accuracy": test accuracy} as JSON.

Usage: python benches/e2e_sklearn.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).parent))
from _e2e_data import digits_split


def main() -> None:
    x_train, y_train, x_test, y_test = digits_split()
    # dltool's digits-mlp shape (2 × 256) and batch; scikit-learn's Adam at its default lr (1e-3,
    # as the recipe's), at most 200 epochs, stopped when 10% held out stops improving.
    model = MLPClassifier(hidden_layer_sizes=(256, 256), batch_size=64, early_stopping=True, random_state=0)
    model.fit(x_train, y_train)
    print(json.dumps({"accuracy": float(model.score(x_test, y_test))}))


if __name__ == "__main__":
    main()
