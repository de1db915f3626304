"""Benchmarks, shipped with the package and run by `cascade bench NAME`: each reports timings as ratios
measured within one run. A benchmark is a module here, listed in `BENCHMARKS`, with `DEFAULTS` (the
settings of its scenario, as `--set` overrides) and `main(config, quick)`, which prints its table and
returns what `bench.json` records."""

BENCHMARKS = {
    "cycle": "one cycle of a 64-node ecosystem, batched against the naive reference; peak, scaling, memory",
    "generation": "the hf and vllm generation engines on one shard of nodes with their own adapters",
    "twin": "what a poison-free twin adds: to the default run, and to a dose sweep whose runs share their twins",
    "sweep": "experiment throughput: the default run and a small sweep as whole processes; runs per hour, fixed costs",
}
