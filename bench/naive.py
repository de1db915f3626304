"""The naive reference of `cascade bench cycle`: a shard doing exactly the work of `Shard` the simplest
way, as the simulator did before it batched nodes: one node at a time, a PEFT model holding that
node's adapter, one batch at a time, each node's data padded to its longest pair, and each node's
prompts answered in their own `generate` call.

Same data, same steps, same rows drawn, the same sampler: only how the computation is organised
differs (its numbers agree with the batched shard's up to floating-point rounding). For the
benchmark's scenario: LoRA, no defense.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from ecosystem.config import Config
from ecosystem.generation import Job
from ecosystem.generation.hf import generate
from ecosystem.models.adapters import PEFT_PREFIX, peft_config
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.shard import Shard
from ecosystem.training import NodeFineTune


class NaiveShard(Shard):
    def __init__(self, config: Config, checkpoint: Path, *args: Any) -> None:
        model, _ = load_checkpoint(checkpoint, "float32")
        lora = peft_config(config.training.lora_rank, config.training.lora_alpha)
        self.peft = get_peft_model(model, lora)  # before the shard's start, which evaluates the base through it
        super().__init__(config, checkpoint, *args)

    def _fine_tune(self, fine_tunes: list[NodeFineTune]) -> list:
        results = []
        for job in fine_tunes:
            self._put(job.adapter)
            loss = self._fine_tune_alone(self.peft, job)
            results.append((self._adapter_of_peft(), loss))
        return results

    def _answer(self, jobs: list[Job]) -> list[list[str]]:
        answers = []
        for node, prompts, seed in jobs:
            self._put(self.weights_of(node))
            new_tokens = self.engine.max_new_tokens
            answers.append(generate(self.peft, self.tokenizer, prompts, seed, new_tokens, self.tokens["generate"]))
        return answers

    def _put(self, adapter: dict[str, torch.Tensor]) -> None:
        state = {f"{PEFT_PREFIX}{name}.weight": tensor for name, tensor in adapter.items()}
        set_peft_model_state_dict(self.peft, state)

    def _adapter_of_peft(self) -> dict[str, torch.Tensor]:
        state = get_peft_model_state_dict(self.peft)
        return {name.removeprefix(PEFT_PREFIX).removesuffix(".weight"): t.detach().clone() for name, t in state.items()}
