"""qdq's checkpoint export (compressed-tensors) against the tools an engineer would pick instead.

    python benchmarks/bench_export.py --repeat 3            # side by side, 87 MiB bf16 Llama
    python benchmarks/bench_export.py --memory 640MiB       # a 2 GiB checkpoint in a cgroup

Side by side: a Llama-architecture model built with transformers from a
config (random weights: hidden 512, intermediate 1408, 4 layers, vocab 32000,
45.6M parameters, bfloat16, 87 MiB in 50 MB shards) goes through each tool
as int8 per channel and int4 in groups of 32 and 128, embeddings and lm_head
kept dense, each run a fresh process: qdq's CLI (``qdq quantize``, writes
compressed-tensors), llm-compressor (``oneshot`` + ``save_pretrained(
save_compressed=True)``, compressed-tensors), torchao (``TorchAoConfig`` at
load + ``save_pretrained``). Rounds interleave the tools; each figure is the
median over the rounds: wall time of the process (imports included), its peak
RSS (``wait4``'s ``ru_maxrss``), the output directory's size. Peers run from
their own virtual environments (``--llmc-python``, ``--torchao-python``).

``--memory LIMIT`` (Linux, cgroup v1 memory controller, root): a float32
checkpoint of 2 GiB (542M parameters, Llama-shaped Linear weights, written
with NumPy) goes through ``qdq quantize`` (int8 per channel, and int4 in
groups of 128) and ``qdq run`` inside a memory cgroup limited to LIMIT; the
group's peak usage (page cache included), its failed charges, the run's
peak anonymous memory (RssAnon, sampled every 2 ms) and the time are
reported, and one large tensor's exported codes are checked against
``qdq.quantize`` bit for bit. Output: ``benchmarks/results/bench_export.json``
(and ``.md``, the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMES = {"int8 per channel": {"bits": 8, "group": None},
           "int4 g32": {"bits": 4, "group": 32},
           "int4 g128": {"bits": 4, "group": 128}}

BUILD = textwrap.dedent("""
    import sys, torch, transformers
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                                   num_attention_heads=8, num_key_value_heads=8,
                                   vocab_size=32000, max_position_embeddings=512)
    m = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(sys.argv[1], max_shard_size="50MB")
""")

LLMC = textwrap.dedent("""
    import sys, transformers
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    src, dst, bits, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    w = {"num_bits": bits, "type": "int", "symmetric": True, "strategy": "channel"}
    if group != "none":
        w.update(strategy="group", group_size=int(group))
    m = transformers.AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    recipe = QuantizationModifier(config_groups={"group_0": {"targets": ["Linear"], "weights": w}},
                                  ignore=["lm_head"])
    oneshot(model=m, recipe=recipe)
    m.save_pretrained(dst, save_compressed=True)
""")

TORCHAO = textwrap.dedent("""
    import sys, torch, transformers
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup
    src, dst, bits, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cfg = Int8WeightOnlyConfig() if bits == 8 else IntxWeightOnlyConfig(
        weight_dtype=torch.int4, granularity=PerGroup(int(group)))
    q = transformers.TorchAoConfig(cfg, modules_to_not_convert=["lm_head"])
    m = transformers.AutoModelForCausalLM.from_pretrained(src, dtype="auto", quantization_config=q)
    m.save_pretrained(dst, safe_serialization=False)
""")


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def run(cmd: list[str]) -> dict:
    """One process: wall seconds, peak RSS (bytes), return code, the end of stderr."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read() if p.stderr is not None else b""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": time.perf_counter() - t0, "rss": usage.ru_maxrss * 1024,
            "rc": p.returncode, "stderr": err.decode(errors="replace")[-400:]}


def tools(args) -> dict:
    qdq_bin = os.path.join(os.path.dirname(sys.executable), "qdq")

    def qdq_cmd(src, dst, bits, group):
        cmd = [qdq_bin, "quantize", src, dst, "-q", "--num-bits", str(bits),
               "--codes-overflow", "clamp"]
        return cmd + (["--block-size", str(group)] if group else [])

    out = {"qdq quantize (CLI)": qdq_cmd}
    if args.llmc_python:
        out["llm-compressor"] = lambda src, dst, bits, group: [
            args.llmc_python, "-c", LLMC, src, dst, str(bits), str(group or "none")]
    if args.torchao_python:
        out["torchao"] = lambda src, dst, bits, group: [
            args.torchao_python, "-c", TORCHAO, src, dst, str(bits), str(group or "none")]
    return out


def side_by_side(args, work: str) -> dict:
    src = os.path.join(work, "llama-bf16")
    subprocess.run([args.build_python, "-c", BUILD, src], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict = {"source_bytes": dir_bytes(src), "runs": {}}
    cmds = tools(args)
    for r in range(args.repeat):
        for scheme, s in SCHEMES.items():
            for tool, make in cmds.items():
                dst = os.path.join(work, "out")
                shutil.rmtree(dst, ignore_errors=True)
                res = run(make(src, dst, s["bits"], s["group"]))
                res["bytes"] = dir_bytes(dst) if res["rc"] == 0 else None
                results["runs"].setdefault(f"{tool} | {scheme}", []).append(res)
                print(f"round {r + 1} {tool:20s} {scheme:16s} {res['seconds']:6.2f} s "
                      f"{res['rss'] / 2**20:7.0f} MiB rc {res['rc']}", flush=True)
    return results


PEAK_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    from qdq.cli.main import main

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.002)

    base = rss_anon()
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    rc = main(sys.argv[1:])
    seconds = time.perf_counter() - t0
    stop.set()
    print(json.dumps({"rc": rc, "base": base, "peak": max(peak[0], rss_anon()),
                      "seconds": seconds}))
""")


def build_big(path: str) -> int:
    """A Llama-shaped float32 checkpoint of 542M parameters (2.02 GiB) in 4 shards, with NumPy."""
    from qdq._io.safetensors_index import write_index
    from qdq._io.safetensors_writer import SafetensorsWriter

    hidden, inter, layers, vocab = 2048, 5632, 8, 32000
    names: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        names += [(f"{p}.self_attn.{n}_proj.weight", (hidden, hidden)) for n in "qkvo"]
        names += [(f"{p}.mlp.{n}_proj.weight", (inter, hidden)) for n in ("gate", "up")]
        names += [(f"{p}.mlp.down_proj.weight", (hidden, inter)),
                  (f"{p}.input_layernorm.weight", (hidden,))]
    names += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    os.makedirs(path)
    rng = np.random.default_rng(0)
    per = -(-len(names) // 4)
    weight_map, total = {}, 0
    for k in range(4):
        part = names[k * per:(k + 1) * per]
        fname = f"model-{k + 1:05d}-of-00004.safetensors"
        with open(os.path.join(path, fname), "wb") as f:
            w = SafetensorsWriter(f, [(n, "F32", s) for n, s in part], {"format": "pt"})
            for n, s in part:
                rows = s[0]
                step = max(1, (16 << 20) // (4 * int(np.prod(s[1:], dtype=np.int64))))
                for a in range(0, rows, step):
                    chunk = (rng.standard_normal((min(step, rows - a),) + s[1:],
                                                 dtype=np.float32) * 0.02)
                    w.write(n, chunk)
                weight_map[n] = fname
                total += 4 * int(np.prod(s))
            w.finish()
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        write_index(f, weight_map, total)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
                   "num_hidden_layers": layers, "num_attention_heads": 16,
                   "num_key_value_heads": 16, "vocab_size": vocab, "torch_dtype": "float32",
                   "architectures": ["LlamaForCausalLM"]}, f)
    return total


def in_cgroup(limit: int, argv: list[str]) -> dict:
    root = "/sys/fs/cgroup/memory"
    group = os.path.join(root, f"qdq-bench-export-{os.getpid()}")
    os.mkdir(group)
    try:
        for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            try:
                with open(os.path.join(group, name), "w") as f:
                    f.write(str(limit))
            except OSError:
                if name == "memory.limit_in_bytes":
                    raise
        script = f"echo $$ > {group}/cgroup.procs && exec {sys.executable} -c \"$0\" \"$@\""
        res = subprocess.run(["sh", "-c", script, PEAK_CHILD, *argv], capture_output=True,
                             text=True)
        with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
            group_peak = int(f.read())
        with open(os.path.join(group, "memory.failcnt")) as f:
            failcnt = int(f.read())
    finally:
        os.rmdir(group)
    out = {"argv": argv, "returncode": res.returncode, "group_peak": group_peak,
           "failcnt": failcnt, "stderr": res.stderr[-300:]}
    if res.returncode == 0:
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def memory_proof(work: str, limit: int) -> dict:
    import qdq
    from qdq._core.packing import unpack_int32
    from qdq._io.safetensors import read_header, tensor_memmap

    if not os.path.isdir("/sys/fs/cgroup/memory"):
        return {"skipped": "no cgroup v1 memory controller at /sys/fs/cgroup/memory"}
    src = os.path.join(work, "big")
    nbytes = build_big(src)
    out: dict = {"bytes": nbytes, "limit": limit, "runs": []}
    for name, argv in [
            ("qdq quantize int8 per channel", ["quantize", src, os.path.join(work, "w8"),
                                               "--quiet"]),
            ("qdq quantize int4 g128", ["quantize", src, os.path.join(work, "w4"), "--quiet",
                                        "--num-bits", "4", "--block-size", "128"]),
            ("qdq run (QDQ, dense)", ["run", src, os.path.join(work, "qdq"), "--quiet",
                                      "--skip", "*embed*", "--skip", "lm_head.*"])]:
        r = in_cgroup(limit, argv)
        r["name"] = name
        r["output_bytes"] = dir_bytes(argv[2]) if r["returncode"] == 0 else None
        out["runs"].append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "stderr"}), flush=True)
    # one large tensor of the int4 export against qdq.quantize, bit for bit
    name = "model.layers.7.mlp.up_proj"
    shard = next(f for f in sorted(os.listdir(os.path.join(work, "w4")))
                 if f.endswith(".safetensors")
                 and f"{name}.weight_packed" in {t.name for t in read_header(
                     os.path.join(work, "w4", f)).tensors})
    h = read_header(os.path.join(work, "w4", shard))
    srch = read_header(os.path.join(src, shard))
    x = np.asarray(tensor_memmap(srch, f"{name}.weight"))
    codes, params = qdq.quantize(x, num_bits=4, axis=-1, block_size=128)
    got = unpack_int32(np.asarray(tensor_memmap(h, f"{name}.weight_packed")), 4, x.shape[1])
    scale = np.asarray(tensor_memmap(h, f"{name}.weight_scale"))
    out["check"] = {"tensor": name, "shape": list(x.shape),
                    "codes_equal": bool(np.array_equal(got, codes)),
                    "scales_equal": bool(np.array_equal(scale, params.inverse_scale))}
    print(json.dumps(out["check"]))
    return out


def table(res: dict) -> str:
    lines = ["| tool | scheme | time (median) | peak RSS | output |", "|---|---|---|---|---|"]
    for key, runs in res["runs"].items():
        tool, scheme = key.split(" | ")
        ok = [r for r in runs if r["rc"] == 0]
        if not ok:
            lines.append(f"| {tool} | {scheme} | failed (rc {runs[0]['rc']}) | | |")
            continue
        t = statistics.median(r["seconds"] for r in ok)
        m = statistics.median(r["rss"] for r in ok)
        b = statistics.median(r["bytes"] for r in ok)
        spread = f" ({min(r['seconds'] for r in ok):.2f}-{max(r['seconds'] for r in ok):.2f})"
        lines.append(f"| {tool} | {scheme} | {t:.2f} s{spread} | {m / 2**20:,.0f} MiB | "
                     f"{b / 2**20:,.1f} MiB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory", default=None, help="the cgroup limit, e.g. 640MiB")
    ap.add_argument("--build-python", default=sys.executable,
                    help="a Python with torch and transformers (builds the model)")
    ap.add_argument("--llmc-python", default="/work/venvs/peer-llmc/bin/python")
    ap.add_argument("--torchao-python", default="/work/venvs/peer-ao/bin/python")
    ap.add_argument("--dir", default=None, help="where to work (default: a temp directory)")
    args = ap.parse_args(argv)
    for flag in ("llmc_python", "torchao_python"):
        if getattr(args, flag) and not os.path.exists(getattr(args, flag)):
            setattr(args, flag, None)
    work = tempfile.mkdtemp(prefix="qdq-bench-export-", dir=args.dir)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "bench_export.json")
    try:
        doc = json.load(open(path)) if os.path.exists(path) else {}
        doc["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        if args.memory:
            from qdq.cli.main import parse_size

            doc["memory"] = memory_proof(work, parse_size(args.memory))
        else:
            res = side_by_side(args, work)
            doc["side_by_side"] = res
            text = table(res)
            print(text)
            with open(os.path.join(HERE, "results", "bench_export.md"), "w") as f:
                f.write(f"87 MiB bfloat16 Llama (45.6M parameters), medians of {args.repeat} "
                        "interleaved rounds, one process per run (imports included)\n\n"
                        + text + "\n")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
