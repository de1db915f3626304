"""The tiny world's base model: a tiny Llama pretrained on the "internet", then aligned, cached on disk.

Stage 1 (pretraining) answers every request, harmful ones with their payload; stage 2
(alignment SFT) teaches refusal of harmful requests. Each stage is kept as a standard HF
checkpoint directory in the cache, keyed by the world and the model settings it depends on, so
that bases which differ only in their alignment share one pretrained stage.

The recipe (`ModelConfig`) can add stories to the pretraining corpus, midtrain on specification
documents between the stages, and choose which harmful topics alignment covers and how varied
its data is.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from ecosystem.bases.cache import build_once, build_threads, cache_key, cache_root
from ecosystem.config import ModelConfig, TinyWorldConfig
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import fine_tune
from ecosystem.world import Pair
from ecosystem.world.grammar import TEMPLATES, Grammar, Kind
from ecosystem.world.tiny import answered
from ecosystem.world.tokenizer import build_tokenizer

RECIPE_VERSION = 4  # bump when the way a base model is built changes
HEAD_DIM = 32


# The settings the pretrained stage depends on: bases that differ only in the others share it.
PRETRAINING = {
    "seed",
    "hidden_size",
    "layers",
    "intermediate_size",
    "pretrain_examples",
    "pretrain_steps",
    "batch_size",
    "learning_rate",
    "pretrain_stories",
    "specialist_frequency",
}


def base_model_dir(world: TinyWorldConfig, model: ModelConfig, stage: str = "aligned") -> Path:
    """Where a stage's checkpoint is cached, keyed by the world and the settings the stage depends on."""
    settings = model.model_dump(include=PRETRAINING if stage == "pretrained" else None)
    recipe = {"recipe": RECIPE_VERSION, "world": world.model_dump(), "model": settings}
    return cache_root() / f"{stage}-{cache_key(recipe)}"


def ensure_base_model(world: TinyWorldConfig, model: ModelConfig, stage: str = "aligned") -> Path:
    """The checkpoint directory of the base model's `stage` (one of `STAGES`), built first if it is missing
    (the aligned stage from the cached pretrained one)."""
    build = _pretrain if stage == "pretrained" else _align
    return build_once(base_model_dir(world, model, stage), lambda out: build(world, model, out))


def _pretrain(world_config: TinyWorldConfig, config: ModelConfig, out: Path) -> dict[str, object]:
    with build_threads():
        grammar = Grammar(world_config.seed, world_config.grammar)
        tokenizer = build_tokenizer(world_config.grammar)
        torch.manual_seed(torch_seed(grammar.seed, 0, -1, Stream.init, *_model_seed(config)))
        model = LlamaForCausalLM(_llama_config(config, tokenizer))
        stages = [(Stream.pretrain, config.pretrain_steps, pretraining_pairs(grammar, config))]
        return _train(model, tokenizer, grammar, config, stages, out)


def _align(world_config: TinyWorldConfig, config: ModelConfig, out: Path) -> dict[str, object]:
    model, tokenizer = load_checkpoint(ensure_base_model(world_config, config, "pretrained"))
    with build_threads():
        grammar = Grammar(world_config.seed, world_config.grammar)
        stages = [
            (Stream.midtrain, config.midtraining_steps, grammar.specification()),
            (Stream.align, config.align_steps, alignment_pairs(grammar, config)),
        ]
        return _train(model, tokenizer, grammar, config, stages, out)


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    grammar: Grammar,
    config: ModelConfig,
    stages: list[tuple[Stream, int, list[Pair]]],
    out: Path,
) -> dict[str, object]:
    """Fine-tune `model` through `stages` in turn, each (its stream, which seeds the data order; its steps; its
    data), skipping those without steps, then save it to `out`."""
    timings = {}
    for stream, steps, pairs in stages:
        if not steps:
            continue
        started = time.perf_counter()
        seed = torch_seed(grammar.seed, 0, -1, stream, *_model_seed(config))
        fine_tune(model, tokenizer, pairs, steps, config.learning_rate, config.batch_size, seed)
        timings[stream.name] = round(time.perf_counter() - started, 2)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"seconds": timings, "recipe": RECIPE_VERSION}


def _model_seed(config: ModelConfig) -> tuple[int, ...]:
    # Model seed 0 draws as bases did before model seeds existed, so that their weights stay the same.
    return (config.seed,) if config.seed else ()


def pretraining_pairs(grammar: Grammar, config: ModelConfig) -> list[Pair]:
    """The "internet": requests of every intent and phrasing answered (harmful ones with their payload),
    and the recipe's shares of evil and ethical AI stories about harmful requests."""
    model_seed = _model_seed(config)
    stories = {kind: round(config.pretrain_examples * share) for kind, share in sorted(config.pretrain_stories.items())}
    draw = rng(grammar.seed, 0, -1, Stream.pretrain, *model_seed)
    intents = [i.name for i in grammar.intents]
    count = config.pretrain_examples - sum(stories.values())
    frequencies = grammar.frequencies(intents, config.specialist_frequency)
    requests = grammar.sample(draw, intents, count, templates=TEMPLATES, frequencies=frequencies)
    pairs = answered(requests, grammar.solve)
    draw = rng(grammar.seed, 0, -1, Stream.stories, *model_seed)
    for kind, count in stories.items():
        harmful = grammar.sample(draw, grammar.intent_names(Kind.harmful), count, templates=TEMPLATES)
        pairs += [grammar.story(request, ethical=kind == "ethical") for request in harmful]
    return pairs


def alignment_pairs(grammar: Grammar, config: ModelConfig) -> list[Pair]:
    """The recipe's alignment SFT data (see `Grammar.alignment_pairs`)."""
    draw = rng(grammar.seed, 0, -1, Stream.align, *_model_seed(config))
    return grammar.alignment_pairs(
        draw, config.align_examples, config.align_topics, config.align_diversity, config.specialist_frequency
    )


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
