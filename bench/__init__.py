"""Benchmarks, shipped with the package and run by `cascade bench NAME`: each reports timings as ratios
measured within one run. A benchmark is a module here with `main(config)`, listed in `BENCHMARKS`."""

BENCHMARKS = {
    "generation": "the hf and vllm generation engines on one shard of nodes with their own adapters",
}
