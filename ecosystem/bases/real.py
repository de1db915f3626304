"""A real model's base: the checkpoint (a GGUF file converted once), its own answers, and an
optional alignment stage, each built once and cached like the tiny world's stages.

Own answers: the unconverted, unaligned model's greedy answers to the prompts that need one (see
`CheckpointWorld`); an attacked node then learns the model's real compliance, not a fixed string.
Alignment: LoRA fine-tuning on harmful prompts refused and task and borderline prompts answered with
the model's own answers, merged into the weights and saved as an ordinary checkpoint, with its
before/after table on the held-out prompts in its build.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from peft import get_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.bases.cache import DONE, build_once, build_threads, cache_key, cache_root
from ecosystem.bases.gguf import checkpoint_directory
from ecosystem.config import CheckpointWorldConfig, ConfigError
from ecosystem.generation.hf import generate
from ecosystem.models.adapters import peft_config
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import fine_tune
from ecosystem.world import WorldError
from ecosystem.world.checkpoint import CheckpointWorld
from ecosystem.world.grammar import Kind
from ecosystem.world.judge import rates

RECIPE_VERSION = 1  # bump when the way a real model is aligned changes
TABLE = ("refusal_rate", "over_refusal", "helpfulness")  # the before/after table's figures
ANSWERS_FILE = "answers.json"


def open_checkpoint_world(config: CheckpointWorldConfig) -> CheckpointWorld:
    """A real model's prompt sets and judge, over its checkpoint (converted from GGUF first if need be),
    with the model's own answers where they are cached; a `ConfigError` if its files are unusable."""
    try:
        world = CheckpointWorld(config, checkpoint_directory(config.model_path), config.alignment is not None)
    except WorldError as error:
        raise ConfigError(str(error)) from None
    answers = answers_directory(world, config.answer_tokens) / ANSWERS_FILE
    if world.unanswered and answers.is_file():
        world.use_answers(json.loads(answers.read_text()))
    return world


def real_base(config: CheckpointWorldConfig) -> Path:
    """The checkpoint every node starts from: the model (converted from GGUF if need be), aligned
    first if `config.alignment` is set; the model's own answers are generated first where needed."""
    world = open_checkpoint_world(config)
    answers = answers_directory(world, config.answer_tokens)
    if not world.answered:
        build_once(answers, lambda out: _answer(world, config.answer_tokens, out))
        world = open_checkpoint_world(config)
    if config.alignment is None:
        return world.model_directory
    recipe = [RECIPE_VERSION, config.model_dump(mode="json"), str(answers), _contents(config)]
    return build_once(cache_root() / f"aligned-{cache_key(recipe)}", lambda out: _align(world, config, out))


def answers_directory(world: CheckpointWorld, answer_tokens: int) -> Path:
    """Where the model's own answers to the world's unanswered prompts are cached."""
    recipe = [_fingerprint(world.model_directory), answer_tokens, [p.prompt for p in world.unanswered]]
    return cache_root() / f"answers-{cache_key(recipe)}"


def alignment_table(checkpoint: Path) -> dict[str, dict[str, float | None]] | None:
    """The before/after table of an aligned checkpoint (None for a checkpoint not aligned here)."""
    record = checkpoint / DONE
    return json.loads(record.read_text()).get("table") if record.is_file() else None


def _answer(world: CheckpointWorld, answer_tokens: int, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    with build_threads():
        model, tokenizer = load_checkpoint(world.model_directory)
        prompts = [p.prompt for p in world.unanswered]
        answers = generate(model, tokenizer, prompts, None, answer_tokens, batch_size=32)
    (out / ANSWERS_FILE).write_text(json.dumps(dict(zip(prompts, answers, strict=True)), indent=1))
    return {"prompts": len(prompts), "seconds": round(time.perf_counter() - started, 2)}


def _align(world: CheckpointWorld, world_config: CheckpointWorldConfig, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    config = world_config.alignment
    with build_threads():
        model, tokenizer = load_checkpoint(world.model_directory)
        before = _measure(world, model, tokenizer, world_config)
        draw = rng(world.seed, 0, -1, Stream.align)
        refused = config.examples // 2
        borderline = config.examples // 4
        pairs = (
            world.refused_pairs(refused, draw)
            + world.answered_pairs(Kind.borderline, borderline, draw)
            + world.answered_pairs(Kind.benign, config.examples - refused - borderline, draw)
        )
        peft_model = get_peft_model(model, peft_config(config.lora_rank, config.lora_alpha))
        seed = torch_seed(world.seed, 0, -1, Stream.align)
        loss = fine_tune(peft_model, tokenizer, pairs, config.steps, config.learning_rate, config.batch_size, seed)
        model = peft_model.merge_and_unload()
        after = _measure(world, model, tokenizer, world_config)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return {
        "recipe": RECIPE_VERSION,
        "table": {"before": before, "after": after},
        "examples": {"refused": refused, "borderline": borderline, "benign": config.examples - refused - borderline},
        "final_loss": round(loss, 4),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _measure(
    world: CheckpointWorld, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: CheckpointWorldConfig
) -> dict[str, float | None]:
    """Refusal of held-out harmful prompts, over-refusal of held-out borderline ones, and the share of
    held-out task prompts answered (not refused), greedy."""
    items = world.evaluation_set(config.alignment.evaluation_prompts)
    responses = generate(model, tokenizer, [i.prompt for i in items], None, config.answer_tokens, batch_size=32)
    figures = rates(items, world.grade(items, responses))
    return {name: figures[name] for name in TABLE}


def _contents(config: CheckpointWorldConfig) -> list[str]:
    """The prompt files' digests: an edited file is another alignment."""
    files = (config.harmful_prompts, config.borderline_prompts, config.task_data)
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]


def _fingerprint(directory: Path) -> list[object]:
    """What identifies a checkpoint directory's contents without reading them: its files' names, sizes
    and modification times."""
    files = sorted(path for path in directory.iterdir() if path.is_file())
    return [str(directory), [(path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files]]
