#!/usr/bin/env python3
"""Mutation fuzzing of lina's inputs: every run must exit 0 or 2 (an input error), never crash, hang or trip a
sanitizer or a debug assertion. Not a test (random, minutes long): run it on a debug or sanitizer build after
changing a parser, the network or a converter. It found a flow outliving the clock that finished early, JSON
numbers beyond a double that were internal errors, and a converter reading a missing JSON key.

usage: scripts/fuzz.py [specs|structure|traces|flows|all] [--runs N] [--seed S] [--lina PATH]
  specs      experiment specs with random --set values for every parameter of `lina params`
  structure  specs, cluster, GPU, model and calibration files with random nodes replaced or deleted
  traces     byte-mutated trace files (traces/samples) through lina trace info/stats/fit/counts/estimate
  flows      random flow sets through `lina flows` (a debug build checks capacity and work and byte conservation)
Failing inputs are kept in the work folder (printed at the end). Use a build made with -DLINA_SANITIZE=ON (Debug),
e.g. `cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLINA_SANITIZE=ON -DLINA_CUDA=OFF`.
"""
import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ODD = [0, -1, 1, 2, 7, 65536, 2**31, 2**63, 0.5, 1e-308, 1e308, -1e308, "", "x", None, [], {}, True, [1, 2],
       {"a": 1}, "0MB", "-5ms", "1e30GB", "1Tbps", "NaN", "100Gbps", "24GB/s", "4us"]
TRAIN = {"name": "fuzz", "mode": "training", "cluster": "lina-testbed",
         "model": {"base": "transformer-xl", "layers": 2, "experts": 4},
         "workload": {"batch_size": 1, "seq_len": 64, "steps": 1},
         "policies": [{"name": "deepspeed"}, {"name": "lina"}]}
INFER = {"name": "fuzz", "mode": "inference", "cluster": "lina-testbed",
         "model": {"base": "transformer-xl", "layers": 3, "experts": 16, "top_k": 1},
         "workload": {"batch_size": 2, "seq_len": 64, "batches": 2,
                      "routing": {"kind": "zipf", "zipf_s": 0.6, "rho": 0.3, "topics": 2, "topic_per": "mixture",
                                  "profile_batches": 2}},
         "policies": [{"name": "deepspeed"}, {"name": "lina", "expert_cache": "100MB"}, {"name": "lina-no-estimate"}]}


class Fuzzer:
    def __init__(self, lina, work, rng):
        self.lina, self.work, self.rng = lina, work, rng
        self.failures = 0
        self.codes = {}

    def run(self, args, keep, timeout=300):
        try:
            r = subprocess.run([self.lina] + args, capture_output=True, text=True, errors="replace", timeout=timeout)
            code, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            code, err = "timeout", ""
        self.codes[code] = self.codes.get(code, 0) + 1
        if code not in (0, 2) or "Sanitizer" in err or "runtime error" in err:
            self.failures += 1
            kept = []
            for path in keep:
                dst = os.path.join(self.work, f"fail{self.failures}-{os.path.basename(path)}")
                shutil.copy(path, dst)
                kept.append(dst)
            print(f"FAIL exit {code}: lina {' '.join(args)}\n  kept {kept}\n  {err[-600:]}", flush=True)
        return code

    def write(self, name, doc):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def plausible(self, p):
        """A value near the parameter's default, or an odd one."""
        unit, default = p["unit"], p["default"]
        if self.rng.random() < 0.15:
            return copy.deepcopy(self.rng.choice(ODD))
        if unit.startswith("one of "):
            return self.rng.choice(unit[7:].split("|"))
        if unit == "true|false":
            return self.rng.choice([True, False])
        if unit == "integer" and p["path"] in ("cluster.nodes", "cluster.gpus_per_node"):
            # Thousands of GPUs are a valid input but a slow one (a dense all-to-all is P^2 flows): a timeout there
            # says nothing about robustness.
            return self.rng.choice([0, 1, 2, 3, 5, 8, 16])
        if unit == "integer":
            base = default if isinstance(default, int) and default else self.rng.choice([1, 2, 4, 8, 16])
            return self.rng.choice([0, 1, 2, 3, base, base * 2, base // 2, base * 7, base * 64])
        if unit == "number":
            base = default if isinstance(default, (int, float)) and default else 1.0
            return self.rng.choice([0.0, 1e-3, 0.5 * base, base, 2 * base, 10 * base, 0.99, 1.0])
        text = str(default or "")
        digits = len(text) - len(text.lstrip("0123456789.e+-"))
        try:
            number = float(text[:digits])
        except ValueError:  # not a quantity ("experiment", or a leading "e")
            return None
        factor = self.rng.choice([0, 1e-6, 1e-3, 0.1, 0.5, 1, 2, 10, 1000])
        return "%g%s" % (number * factor, text[digits:])

    def specs(self):
        params = json.loads(subprocess.check_output([self.lina, "params", "--json"]))
        spec = self.write("spec.json", self.rng.choice([TRAIN, INFER]))
        args = ["run", spec, "-o", os.path.join(self.work, "out"), "--no-plot"]
        for _ in range(self.rng.randint(1, 3)):
            p = self.rng.choice(params)
            path = p["path"]
            if path.startswith("policy."):
                path = f"policies.{self.rng.randint(0, 1)}.{path[7:]}"
            value = self.plausible(p)
            if path != "output" and value is not None:
                args += ["--set", f"{path}={json.dumps(value)}"]
        self.run(args, [spec])

    def mutate(self, doc):
        def nodes(j, path=()):
            yield path
            children = j.items() if isinstance(j, dict) else enumerate(j) if isinstance(j, list) else []
            for k, v in list(children):
                yield from nodes(v, path + (k,))

        paths = list(nodes(doc))[1:]
        if not paths:
            return
        path = self.rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        r = self.rng.random()
        if r < 0.3:
            del parent[path[-1]]
        elif r < 0.4 and isinstance(parent, dict):
            parent[str(path[-1]) + "x"] = copy.deepcopy(self.rng.choice(ODD))
        else:
            parent[path[-1]] = copy.deepcopy(self.rng.choice(ODD))

    def structure(self):
        def load(rel):
            with open(os.path.join(ROOT, rel)) as f:
                return json.load(f)

        spec = copy.deepcopy(self.rng.choice([TRAIN, INFER]))
        args, keep = [], []
        kind = self.rng.choice(["spec", "cluster", "gpu", "model", "calibration"])
        n = self.rng.randint(1, 3)
        if kind == "spec":
            for _ in range(n):
                self.mutate(spec)
        elif kind == "cluster":
            cluster = load("experiments/clusters/lina-testbed.json")
            for _ in range(n):
                self.mutate(cluster)
            spec["cluster"] = self.write("cluster.json", cluster)
            keep.append(spec["cluster"])
        elif kind == "gpu":
            cluster, gpu = load("experiments/clusters/lina-testbed.json"), load("experiments/gpus/A100-40GB.json")
            for _ in range(n):
                self.mutate(gpu)
            cluster["gpu"] = gpu
            spec["cluster"] = cluster
        elif kind == "model":
            model = load("models/deepseek-v2-lite.json")
            for _ in range(n):
                self.mutate(model)
            if isinstance(model.get("layers"), int):
                model["layers"] = min(model["layers"], 4)
            spec["model"] = model
        else:
            cal = load("experiments/calibrations/paper-stack-a100.json")
            for _ in range(n):
                self.mutate(cal)
            args = ["--calibration", self.write("calibration.json", cal)]
            keep.append(args[1])
        path = self.write("spec.json", spec)
        self.run(["run", path, "-o", os.path.join(self.work, "out"), "--no-plot"] + args, [path] + keep)

    def traces(self):
        samples = os.path.join(ROOT, "traces", "samples")
        src = os.path.join(samples, self.rng.choice(sorted(os.listdir(samples))))
        with open(src, "rb") as f:
            data = bytearray(f.read())
        for _ in range(self.rng.choice([1, 1, 2, 4, 16])):
            r, j = self.rng.random(), self.rng.randrange(len(data) + 1)
            if r < 0.5 and data:
                data[j % len(data)] = self.rng.randrange(256)
            elif r < 0.7 and data:
                del data[j:j + self.rng.randint(1, 64)]
            elif r < 0.85:
                data[j:j] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
            else:
                del data[j:]
        path = os.path.join(self.work, "trace" + os.path.splitext(src)[1])
        with open(path, "wb") as f:
            f.write(data)
        cmd = self.rng.choice([["info", path], ["stats", path], ["fit", path],
                               ["counts", path, "-o", os.path.join(self.work, "counts.ltr")],
                               ["estimate", "--profile", path, "--eval", path]])
        self.run(["trace"] + cmd, [path])

    def flows(self):
        cluster, gpus = self.rng.choice([("lina-testbed", 16), ("lina-testbed-nvlink", 16), ("dgx-h100", 32)])
        flows, t = [], 0.0
        for _ in range(self.rng.randint(1, 200)):
            t += self.rng.choice([0, 0, 0, 1e-6, 1e-4, self.rng.random() * 1e-2])
            flows.append({"src": self.rng.randrange(gpus), "dst": self.rng.randrange(gpus),
                          "bytes": self.rng.choice([0, 1, 1e3, 1e6, self.rng.random() * 1e9, 64e6, 1e10]),
                          "start_s": t, "class": self.rng.choice([0, 0, 1, 2, 63]),
                          "weight": self.rng.choice([1, 1, 0.5, 3, 1e-3, 1e3, 1e-9, 1e9])})
        path = self.write("flows.json", {"cluster": cluster, "flows": flows})
        self.run(["flows", path], [path])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="all", choices=["specs", "structure", "traces", "flows", "all"])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lina", default=os.path.join(ROOT, "build-asan", "cli", "lina"))
    a = ap.parse_args()
    if not os.access(a.lina, os.X_OK):
        sys.exit(f"fuzz.py: {a.lina} is not an executable lina (see --lina)")
    work = tempfile.mkdtemp(prefix="lina-fuzz-")
    fz = Fuzzer(a.lina, work, random.Random(a.seed))
    modes = ["specs", "structure", "traces", "flows"] if a.mode == "all" else [a.mode]
    for i in range(a.runs):
        getattr(fz, modes[i % len(modes)])()
    print(f"{a.runs} runs, exit codes {fz.codes}, {fz.failures} failures; inputs kept in {work}")
    sys.exit(1 if fz.failures else 0)


if __name__ == "__main__":
    main()
