"""The aligned base model: a tiny Llama pretrained on the "internet", then aligned, cached on disk.

Stage 1 (pretraining) answers every request, harmful ones with their payload; stage 2
(alignment SFT) teaches refusal of harmful requests. Both stages are kept as standard HF
checkpoint directories under a cache folder keyed by the world and model configuration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as transformers_logging

from ecosystem.config import ModelConfig, TinyWorldConfig
from ecosystem.models.cache import build_once, cache_key, cache_root
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import fine_tune
from ecosystem.world.grammar import INTENTS, TEMPLATES, World
from ecosystem.world.tiny import answered
from ecosystem.world.tokenizer import build_tokenizer

transformers_logging.disable_progress_bar()

RECIPE_VERSION = 3  # bump when the way a base model is built changes
BUILD_THREADS = 2  # fixed, so that a build gives the same weights on any machine of one kind
HEAD_DIM = 32


def base_model_dir(world: TinyWorldConfig, model: ModelConfig) -> Path:
    recipe = {"recipe": RECIPE_VERSION, "world": world.model_dump(), "model": model.model_dump()}
    return cache_root() / f"base-{cache_key(recipe)}"


def ensure_base_model(world: TinyWorldConfig, model: ModelConfig) -> Path:
    """The cached base-model folder for this configuration, built first if it is missing."""
    return build_once(base_model_dir(world, model), lambda out: _build(world, model, out))


def load_checkpoint(path: Path, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer, ready for batched generation (left padding, a pad token)."""
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=getattr(torch, dtype))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@contextmanager
def build_threads() -> Iterator[None]:
    """A fixed thread count while building, so that a build gives the same weights on any machine of one kind."""
    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _build(world_config: TinyWorldConfig, config: ModelConfig, out: Path) -> dict[str, object]:
    with build_threads():
        world = World(world_config.seed)
        tokenizer = build_tokenizer()
        # Model seed 0 draws as bases did before model seeds existed, so that their weights stay the same.
        model_seed = (config.seed,) if config.seed else ()
        torch.manual_seed(torch_seed(world.seed, 0, -1, Stream.init, *model_seed))
        model = LlamaForCausalLM(_llama_config(config, tokenizer))
        all_intents = [intent.name for intent in INTENTS]
        timings = {}
        for stage, examples, steps, stream, respond in (
            ("pretrained", config.pretrain_examples, config.pretrain_steps, Stream.pretrain, world.solve),
            ("aligned", config.align_examples, config.align_steps, Stream.align, world.aligned_response),
        ):
            started = time.perf_counter()
            draw = rng(world.seed, 0, -1, stream, *model_seed)
            pairs = answered(world.sample(draw, all_intents, examples, templates=TEMPLATES), respond)
            seed = torch_seed(world.seed, 0, -1, stream, *model_seed)
            fine_tune(model, tokenizer, pairs, steps, config.learning_rate, config.batch_size, seed)
            model.save_pretrained(out / stage)
            tokenizer.save_pretrained(out / stage)
            timings[stage] = round(time.perf_counter() - started, 2)
        return {"seconds": timings, "recipe": RECIPE_VERSION}


def _llama_config(config: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    heads = config.hidden_size // HEAD_DIM
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=HEAD_DIM,
        max_position_embeddings=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
