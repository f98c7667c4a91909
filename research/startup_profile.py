"""Where the README's command spends its start-up (issue 30; the answer is in docs/performance.md,
"Where start-up goes").

    python research/startup_profile.py [--runs 3] [--out FILE.json]

Three measurements, each in fresh interpreters:
1. `python -X importtime -c "import dreamvideo.pipeline"`: self time by top-level package, and
   the chain of importers that first brings in each costly module (torch._dynamo, sympy,
   scipy, requests, httpx, transformers, diffusers' model packages).
2. Every importer of `torch._dynamo` on the default path: removing one importer does not
   remove the cost while another remains (the reason no stub of it is shipped).
3. The gain of deferring diffusers' eager package `__init__`s (models.unets,
   models.transformers, models.autoencoders) until first attribute use, and of a stand-in
   `torch._dynamo` while `diffusers.utils` loads: measured here, neither shipped (both lean
   on libraries' internals, for gains the figures show to be small).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections import Counter

COSTLY = (
    "torch._dynamo",
    "sympy",
    "scipy.stats",
    "scipy.optimize",
    "requests",
    "httpx",
    "transformers",
    "diffusers.models.unets",
    "diffusers.models.transformers",
    "diffusers.models.autoencoders",
    "diffusers.loaders.lora_base",
    "diffusers.loaders.single_file_utils",
)

# Executed with `python -c`: imports the sampling code, optionally deferring diffusers' package
# inits first; prints the seconds of the import after torch.
_DEFERRED_IMPORT = r"""
import importlib.util, sys, time
import torch
start = time.perf_counter()
if sys.argv[1] == "defer":
    import diffusers.models
    for name in ("diffusers.models.unets", "diffusers.models.transformers", "diffusers.models.autoencoders"):
        spec = importlib.util.find_spec(name)
        module = importlib.util.module_from_spec(spec)
        def complete(attr, module=module, spec=spec):
            del module.__dict__["__getattr__"]
            spec.loader.exec_module(module)
            return getattr(module, attr)
        module.__getattr__ = complete
        sys.modules[name] = module
elif sys.argv[1] == "stub-dynamo":  # diffusers.utils sees a stand-in torch._dynamo, then it goes
    import types
    stub = types.ModuleType("torch._dynamo")
    stub.allow_in_graph = lambda f: f
    sys.modules["torch._dynamo"] = stub
    import diffusers.utils
    del sys.modules["torch._dynamo"]
import dreamvideo.pipeline
print(time.perf_counter() - start)
"""


def importtime_rows(statement: str) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) rows of `python -X importtime -c statement`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
    return rows


def importer_chain(rows: list[tuple[int, int, int, str]], index: int) -> list[str]:
    """The module at `index` and who imported it, up to the top (importtime lists children first)."""
    chain, depth = [rows[index][3]], rows[index][2]
    for _, cumulative_us, row_depth, name in rows[index + 1 :]:
        if row_depth < depth:
            chain.append(f"{name} ({cumulative_us / 1e6:.2f} s)")
            depth = row_depth
    return chain


def profile(statement: str) -> dict:
    rows = importtime_rows(statement)
    by_package: Counter = Counter()
    for self_us, _, _, name in rows:
        by_package[name.split(".")[0]] += self_us
    chains = {}
    for target in COSTLY:
        index = next((i for i, row in enumerate(rows) if row[3] == target), None)
        if index is not None:
            chains[target] = {
                "cumulative_seconds": rows[index][1] / 1e6,
                "imported_by": importer_chain(rows, index),
            }
    return {
        "self_seconds_total": round(sum(by_package.values()) / 1e6, 3),
        "self_seconds_by_package": {k: round(v / 1e6, 3) for k, v in by_package.most_common(15)},
        "first_import_chains": chains,
    }


def dynamo_importers() -> list[str]:
    """Modules of the default path whose own source imports torch._dynamo at module level."""
    code = (
        "import sys, dreamvideo.pipeline, dreamvideo.text, transformers.models.bert.modeling_bert\n"
        "import re, inspect\n"
        "pattern = re.compile(r'^\\s*(from torch\\._dynamo|import torch\\._dynamo)', re.M)\n"
        "for name, module in sorted(sys.modules.items()):\n"
        "    if name.split('.')[0] in ('diffusers', 'transformers', 'accelerate', 'dreamvideo'):\n"
        "        try: source = inspect.getsource(module)\n"
        "        except (OSError, TypeError): continue\n"
        "        if pattern.search(source): print(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


MODES = ("plain", "defer", "stub-dynamo")


def import_experiments(runs: int) -> dict:
    """The import of the sampling code after torch: as shipped, with diffusers' package inits
    deferred, and with `torch._dynamo` stubbed while `diffusers.utils` loads (neither shipped)."""

    def seconds(mode: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", _DEFERRED_IMPORT, mode], capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip().splitlines()[-1])

    medians = {mode: statistics.median(seconds(mode) for _ in range(runs)) for mode in MODES}
    return {
        "import_after_torch_seconds_median": round(medians["plain"], 3),
        "deferred_package_inits_seconds_median": round(medians["defer"], 3),
        "deferred_package_inits_gain_seconds": round(medians["plain"] - medians["defer"], 3),
        "dynamo_stub_seconds_median": round(medians["stub-dynamo"], 3),
        "dynamo_stub_gain_seconds": round(medians["plain"] - medians["stub-dynamo"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    result = {
        "import_dreamvideo_pipeline": profile("import dreamvideo.pipeline"),
        "modules_importing_torch_dynamo": dynamo_importers(),
        "import_experiments": import_experiments(args.runs),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
