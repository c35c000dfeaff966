"""µs per generated token and peak RSS of stories260K greedy decoding (200 tokens from BOS,
one decode step per token with a KV cache), side by side in one run: the slm-aot generated
crate (`slm-aot generate` runner), ONNX Runtime and tract on the same ONNX export (fixed
256-slot cache, `models/stories260K/stories260K_step_kv256.onnx`). Each engine runs in its
own process so peak RSS is its own; each also checks its ids against llama2.c's reference.
µs/token is the mean over the steps after the first (the Python engines' time includes
feeding the cache arrays back through their Python APIs each step).

Usage: /opt/exportenv/bin/python bench/lm_speed.py [--tokens N] [--target NAME]
[--quantize int8] [--agreement]   (from the repo root, after `cargo build --release -p slm-aot`).
Needs numpy, onnxruntime, tract (PyPI). `--agreement` instead builds the f32 and the int8 runner
and prints, for prompts made of the first 1/5/20/50 reference ids, how many of the next 32
greedy ids of int8 equal f32's (and whether f32's equal llama2.c's).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, "models/stories260K/stories260K_step_kv256.onnx")


def reference_ids(n):
    with open(os.path.join(REPO, "models/stories260K/ref/greedy.json")) as f:
        return json.load(f)["greedy_ids_from_bos_201"][1 : n + 1]


def python_engine(engine, n):
    """Runs in a child process: greedy decoding, prints a JSON result line."""
    import numpy as np

    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]

        def step(feed):
            return dict(zip(names, sess.run(None, feed)))

        version = ort.__version__
    else:
        import tract

        inference = tract.onnx().load(MODEL)
        model = inference.into_model().into_runnable()
        names = ["logits"] + [f"present.{l}.{k}" for l in range(5) for k in ("key", "value")]

        def step(feed):
            ins = [feed["input_ids"], feed["position_ids"]] + [
                feed[f"past_key_values.{l}.{k}"] for l in range(5) for k in ("key", "value")
            ]
            outs = model.run(ins)
            return dict(zip(names, [o.to_numpy() for o in outs]))

        version = tract.version() if hasattr(tract, "version") else "?"
    past = {f"past_key_values.{l}.{k}": np.zeros((1, 4, 256, 8), np.float32) for l in range(5) for k in ("key", "value")}
    token, ids, times = 1, [], []
    for pos in range(n):
        feed = {"input_ids": np.array([[token]], np.int64), "position_ids": np.array([[pos]], np.int64), **past}
        t = time.perf_counter()
        out = step(feed)
        times.append(time.perf_counter() - t)
        token = int(np.argmax(out["logits"][0, -1]))
        ids.append(token)
        for l in range(5):
            for k in ("key", "value"):
                past[f"past_key_values.{l}.{k}"] = out[f"present.{l}.{k}"]
    print(json.dumps({
        "engine": f"{engine} {version}",
        "us_per_token": sum(times[1:]) / max(len(times) - 1, 1) * 1e6,
        "ids": ids,
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


def build_runner(target, quantize):
    """Builds the generated stateful runner; returns its path."""
    work = os.path.join(REPO, "target", f"bench-lm-{target}-{quantize or 'f32'}")
    exe = os.path.join(REPO, "target", "release", "slm-aot")
    subprocess.run(
        [exe, "generate", MODEL, "--target", target, "--max-context", "256", "--prompt-ids", "1",
         "--tokens", "1", "--greedy", "--print-ids", "--work-dir", work]
        + (["--quantize", quantize] if quantize else []),
        check=True, capture_output=True,
    )
    runner = os.path.join(work, "target", "release", "stories260k-step-kv256-generate")
    if not os.path.exists(runner):
        runner = [os.path.join(work, "target", "release", f) for f in os.listdir(os.path.join(work, "target", "release")) if f.endswith("-generate")][0]
    return runner


def greedy(runner, prompt, n):
    p = subprocess.run([runner, "--prompt-ids", ",".join(map(str, prompt)), "--tokens", str(n),
                        "--temperature", "0"], check=True, capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def agreement(target):
    with open(os.path.join(REPO, "models/stories260K/ref/greedy.json")) as f:
        ref = json.load(f)["greedy_ids_from_bos_201"]
    f32, int8 = build_runner(target, None), build_runner(target, "int8")
    for plen in (1, 5, 20, 50):
        a, b = greedy(f32, ref[:plen], 32), greedy(int8, ref[:plen], 32)
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        print(f"prompt: first {plen} reference ids: int8 == f32 for {sum(x == y for x, y in zip(a, b))}/32 "
              f"(first difference at {first}); f32 == llama2.c: {a == ref[plen:plen + 32]}")


def slm_aot(n, target, quantize):
    runner = build_runner(target, quantize)
    p = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb %M", runner, "--prompt-ids", "1", "--tokens", str(n),
         "--temperature", "0", "--print-ids"],
        check=True, capture_output=True, text=True,
    )
    rss = int(p.stderr.split("maxrss_kb ")[1].split()[0])
    us = float(p.stderr.split("tokens, ")[1].split(" µs/token")[0])
    return {"engine": f"slm-aot ({target}{', ' + quantize if quantize else ''}, stateful)", "us_per_token": us,
            "ids": [int(x) for x in p.stdout.split()], "rss_kb": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--engine")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--quantize")
    ap.add_argument("--agreement", action="store_true")
    args = ap.parse_args()
    if args.engine:
        python_engine(args.engine, args.tokens)
        return
    if args.agreement:
        agreement(args.target)
        return
    want = reference_ids(args.tokens)
    rows = [slm_aot(args.tokens, args.target, args.quantize)]
    for engine in ("onnxruntime", "tract"):
        p = subprocess.run([sys.executable, __file__, "--engine", engine, "--tokens", str(args.tokens)],
                           check=True, capture_output=True, text=True)
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"stories260K, {args.tokens} greedy tokens from BOS, one step per token (kv256 export), 1 thread")
    print(f"{'engine':<40} {'µs/token':>10} {'peak RSS':>10}  ids == llama2.c reference")
    for r in rows:
        print(f"{r['engine']:<40} {r['us_per_token']:>10.1f} {r['rss_kb'] / 1024:>8.1f} MB  {r['ids'] == want}")


if __name__ == "__main__":
    main()
