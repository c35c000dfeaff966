"""Reference for `compiler/tests/targets.rs`: stories260K's first decode step (BOS at
position 0, empty KV cache) through ONNX Runtime, as the inputs and reference of the stateful
build (`--max-context 256`, whose inputs are `input_ids` and `position_ids`; the cache is the
crate's zeroed state).

    python3 -m venv /tmp/venv-edge && /tmp/venv-edge/bin/pip install onnxruntime numpy
    /tmp/venv-edge/bin/python tests/targets/make_stories_step.py
"""
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent.parent / "models/stories260K/stories260K_step_kv256.onnx"
OUT = HERE / "stories260k_step"


def main() -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": np.array([[1]], dtype=np.int64),
        "position_ids": np.array([[0]], dtype=np.int64),
    }
    for i in session.get_inputs():
        if i.name.startswith("past_key_values"):
            feeds[i.name] = np.zeros(i.shape, dtype=np.float32)
    logits = session.run(["logits"], feeds)[0]
    (OUT / "inputs").mkdir(parents=True, exist_ok=True)
    (OUT / "reference").mkdir(parents=True, exist_ok=True)
    np.save(OUT / "inputs/input_ids.npy", feeds["input_ids"])
    np.save(OUT / "inputs/position_ids.npy", feeds["position_ids"])
    np.save(OUT / "reference/logits.npy", logits)
    print(f"onnxruntime {ort.__version__}: logits {logits.shape}, argmax {int(logits.argmax())}")


if __name__ == "__main__":
    main()
