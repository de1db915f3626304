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

from ecosystem.config import AlignmentConfig, CheckpointWorldConfig
from ecosystem.generation.hf import generate
from ecosystem.models.adapters import peft_config
from ecosystem.models.base import build_threads, load_checkpoint
from ecosystem.models.cache import DONE, build_once, cache_key, cache_root
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import fine_tune
from ecosystem.world.checkpoint import ANSWERS_FILE, CheckpointWorld
from ecosystem.world.grammar import Kind
from ecosystem.world.judge import rates

RECIPE_VERSION = 1  # bump when the way a real model is aligned changes
TABLE = ("refusal_rate", "over_refusal", "helpfulness")  # the before/after table's figures


def real_base(config: CheckpointWorldConfig, answers_with_targets: bool) -> Path:
    """The checkpoint every node starts from: the model (converted from GGUF if need be), aligned
    first if `config.alignment` is set; the model's own answers are generated first where needed."""
    world = CheckpointWorld(config, answers_with_targets)
    if not world.answered:
        build_once(world.answers_directory, lambda out: _answer(world, out))
        world = CheckpointWorld(config, answers_with_targets)
    if config.alignment is None:
        return world.model_directory
    recipe = [RECIPE_VERSION, config.model_dump(mode="json"), str(world.answers_directory), _contents(config)]
    return build_once(cache_root() / f"aligned-{cache_key(recipe)}", lambda out: _align(world, config.alignment, out))


def alignment_table(checkpoint: Path) -> dict[str, dict[str, float | None]] | None:
    """The before/after table of an aligned checkpoint (None for a checkpoint not aligned here)."""
    record = checkpoint / DONE
    return json.loads(record.read_text()).get("table") if record.is_file() else None


def _answer(world: CheckpointWorld, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    with build_threads():
        model, tokenizer = load_checkpoint(world.model_directory)
        prompts = [p.prompt for p in world.unanswered]
        answers = generate(model, tokenizer, prompts, None, world.config.answer_tokens, batch_size=32)
    (out / ANSWERS_FILE).write_text(json.dumps(dict(zip(prompts, answers, strict=True)), indent=1))
    return {"prompts": len(prompts), "seconds": round(time.perf_counter() - started, 2)}


def _align(world: CheckpointWorld, config: AlignmentConfig, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    with build_threads():
        model, tokenizer = load_checkpoint(world.model_directory)
        before = _measure(world, model, tokenizer, config)
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
        after = _measure(world, model, tokenizer, config)
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
    world: CheckpointWorld, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: AlignmentConfig
) -> dict[str, float | None]:
    """Refusal of held-out harmful prompts, over-refusal of held-out borderline ones, and the share of
    held-out task prompts answered (not refused), greedy."""
    items = world.evaluation_set(config.evaluation_prompts)
    responses = generate(model, tokenizer, [i.prompt for i in items], None, world.config.answer_tokens, batch_size=32)
    figures = rates(items, world.grade(items, responses))
    return {name: figures[name] for name in TABLE}


def _contents(config: CheckpointWorldConfig) -> list[str]:
    """The prompt files' digests: an edited file is another alignment."""
    files = (config.harmful_prompts, config.borderline_prompts, config.task_data)
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
