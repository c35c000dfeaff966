#!/usr/bin/env python3
"""CPU time per run of generated crates and ONNX Runtime, interleaved in rounds.

On a loaded machine wall-clock medians mostly measure the other jobs; the task clock of
the process (time it was actually on a core) is far steadier. Engines are work folders of
`slm-aot bench --work-dir DIR` (their built runner and `inputs/`), timed by `perf stat -e
task-clock` with the start-up cost (one run) subtracted, or `ort:MODEL.onnx` (one thread,
`time.process_time` around the runs; inputs: ids 100.., mask 1, token types 0, shape 1×128).

    bench/cpu_time.py --runs 30 --rounds 5 /tmp/w-fp32 /tmp/w-int8 ort:/tmp/q/model_int8.onnx

`--profile` also samples each generated crate with `perf record` (after the timed rounds)
and prints where its time goes, by kernel family, as shares and ms of the median run.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ORT = """
import sys, time, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
f = {i.name: np.ones((1, 128), np.int64) if "mask" in i.name
     else np.zeros((1, 128), np.int64) if "type" in i.name
     else (np.arange(128, dtype=np.int64) % 1000 + 100).reshape(1, 128) for i in s.get_inputs()}
for _ in range(3): s.run(None, f)
t = time.process_time()
for _ in range(int(sys.argv[2])): s.run(None, f)
print((time.process_time() - t) / int(sys.argv[2]) * 1e3)
"""


def runner(work):
    rel = os.path.join(work, "target", "release")
    return os.path.join(rel, next(f for f in os.listdir(rel) if f.endswith("-runner")))


def task_clock_ms(work, runs):
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    cmd = ["perf", "stat", "-x,", "-e", "task-clock", runner(work),
           os.path.join(work, "inputs"), os.path.join(work, "out"), str(runs)]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return float(next(l for l in err.splitlines() if "task-clock" in l).split(",")[0])


# Kernel families of `--profile`, first match wins (symbols as `perf report` names them).
FAMILIES = [
    ("int8 GEMM", r"qgemm::(\w+::)?(qgemm|tile)|drive_i8"),
    ("int8 attention (QAttention)", r"kernels::qattention"),
    ("row quantization", r"symmetric_row|quantize_rows|quantize_tensor|affine_row|ordered_range"),
    ("f32 GEMM (int8: attention products)", r"kernels::gemm::"),
    ("attention loops (scale, mask)", r"kernels::attention"),
    ("softmax", r"softmax|rowwise::\w+::(row_max|exp_sub_sum|scale)"),
    ("LayerNorm", r"layer_norm|rms_norm"),
    ("GELU/SiLU maps (epilogues, Elementwise)", r"kernels::rowwise::"),
    ("layout copies", r"kernels::layout::|memmove|memcpy"),
    ("elementwise", r"kernels::elementwise"),
    ("pooling (reduce)", r"kernels::reduce"),
]


def profile(work, runs):
    """Shares of the runner's samples by kernel family (perf record, user and kernel)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-F", "2000", "-o", data, runner(work),
                        os.path.join(work, "inputs"), os.path.join(work, "out"), str(runs)],
                       capture_output=True, check=True)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort",
                              "symbol", "--stdio", "-g", "none"],
                             capture_output=True, text=True, check=True).stdout
    shares = {}
    for line in rep.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[.\]\s+(\S+)", line)
        if m:
            name = next((f for f, pat in FAMILIES if re.search(pat, m.group(2))),
                        "other (OS, start-up, rest)")
            shares[name] = shares.get(name, 0.0) + float(m.group(1))
    return shares


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="python with onnxruntime")
    ap.add_argument("--profile", action="store_true",
                    help="also print each generated crate's time by kernel family (perf record)")
    ap.add_argument("engines", nargs="+")
    a = ap.parse_args()
    start = {e: task_clock_ms(e, 1) for e in a.engines if not e.startswith("ort:")}
    per_run = {e: [] for e in a.engines}
    for _ in range(a.rounds):
        for e in a.engines:
            if e.startswith("ort:"):
                out = subprocess.run([a.python, "-c", ORT, e[4:], str(a.runs)],
                                     capture_output=True, text=True, check=True).stdout
                per_run[e].append(float(out))
            else:
                per_run[e].append((task_clock_ms(e, a.runs) - start[e]) / (a.runs - 1))
    for e in a.engines:
        rounds = " ".join(f"{x:.2f}" for x in per_run[e])
        print(f"{e:<50} {statistics.median(per_run[e]):8.3f} ms CPU/run (rounds: {rounds})")
    print("load average", " ".join(open("/proc/loadavg").read().split()[:3]))
    if a.profile:
        for e in (e for e in a.engines if not e.startswith("ort:")):
            shares, ms = profile(e, a.runs), statistics.median(per_run[e])
            print(f"{e}: where the time goes (perf record, {a.runs} runs)")
            for name, pct in sorted(shares.items(), key=lambda x: -x[1]):
                print(f"  {name:<38} {pct:5.1f} %  {pct / 100 * ms:6.2f} ms")


if __name__ == "__main__":
    main()
