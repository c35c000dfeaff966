#!/usr/bin/env python3
"""Write ONNX's backend node tests in the classic on-disk layout.

onnx >= 1.23 builds the node test cases in memory instead of shipping files; this script
writes each case back out as

    OUT/node/<test>/model.onnx
    OUT/node/<test>/test_data_set_N/input_K.pb, output_K.pb

(TensorProto files; sequence/map/optional values are skipped with a marker file, since
slm-aot does not support those types). Re-running gives byte-identical files. The onnx
version is pinned by scripts/setup.sh; the script refuses another one so the published
figures stay comparable.

Usage: generate.py OUT_DIR
"""
import os
import sys
import warnings

PINNED_ONNX = "1.23.2"


def write_if_changed(path, data):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(data)


def tensor_bytes(value, name):
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, name).SerializeToString()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.join(sys.argv[1], "node")
    warnings.simplefilter("ignore")
    import numpy as np
    import onnx
    from onnx.backend.test.loader import load_model_tests

    if onnx.__version__ != PINNED_ONNX:
        sys.exit(f"generate.py needs onnx=={PINNED_ONNX}, found {onnx.__version__}")
    np.seterr(all="ignore")
    cases = load_model_tests(kind="node")
    for case in cases:
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir, exist_ok=True)
        write_if_changed(os.path.join(case_dir, "model.onnx"), case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets or []):
            data_dir = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(data_dir, exist_ok=True)
            for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
                for j, value in enumerate(values):
                    path = os.path.join(data_dir, f"{kind}_{j}.pb")
                    if j < len(infos) and not infos[j].type.HasField("tensor_type"):
                        write_if_changed(path + ".not-a-tensor", b"")
                        continue
                    name = infos[j].name if j < len(infos) else f"{kind}_{j}"
                    write_if_changed(path, tensor_bytes(value, name))
    print(f"{len(cases)} node tests in {out}")


if __name__ == "__main__":
    main()
