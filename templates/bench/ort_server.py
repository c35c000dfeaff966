"""ONNX Runtime side of `slm-aot bench`: one thread, all graph optimisations.

Usage: python ort_server.py MODEL INPUT_DIR. INPUT_DIR/manifest.txt holds one line per graph
input, `<index> <dtype> <dims,comma,separated or -> <name>`, and `<index>.bin` its raw
little-endian bytes. Prints `ready`; each stdin line `N` runs the model N times and prints
`run_us X` per run, then `done`; end of input quits.
"""
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"missing python package: {e}", file=sys.stderr)
    sys.exit(3)

DTYPES = {"f32": np.float32, "i64": np.int64, "i32": np.int32, "bool": np.bool_, "f64": np.float64}


def main():
    model, input_dir = sys.argv[1], sys.argv[2]
    feeds = {}
    with open(f"{input_dir}/manifest.txt") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            index, dtype, dims, name = parts[0], parts[1], parts[2], parts[3]
            shape = [] if dims == "-" else [int(d) for d in dims.split(",")]
            data = np.fromfile(f"{input_dir}/{index}.bin", dtype=DTYPES[dtype])
            feeds[name] = data.reshape(shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line.strip() or 0)
        for _ in range(n):
            start = time.perf_counter()
            session.run(None, feeds)
            print(f"run_us {(time.perf_counter() - start) * 1e6}")
        print("done", flush=True)


if __name__ == "__main__":
    main()
