"""The naive reference of `cascade bench cycle`: a shard doing exactly the work of `Shard` the simplest
way, as the simulator did before it batched nodes: one node at a time, a PEFT model holding that
node's adapter, one batch at a time, each node's data padded to its longest pair, and each node's
prompts generated in their own `generate` call.

Same data, same steps, same rows drawn: only how the computation is organised differs (its numbers
agree with the batched shard's up to floating-point rounding and the sampler's random numbers). For
the benchmark's scenario: LoRA, no defense.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from ecosystem.config import Config
from ecosystem.generation import Job
from ecosystem.models.base import load_checkpoint
from ecosystem.shard import Shard
from ecosystem.training import NodeFineTune, fine_tune

PEFT_PREFIX = "base_model.model."


class NaiveShard(Shard):
    def __init__(self, config: Config, checkpoint: Path, *args: Any) -> None:
        model, _ = load_checkpoint(checkpoint, "float32")
        lora = LoraConfig(
            r=config.training.lora_rank, lora_alpha=config.training.lora_alpha, target_modules="all-linear"
        )
        self.peft = get_peft_model(model, lora)  # before the shard's start, which evaluates the base through it
        super().__init__(config, checkpoint, *args)

    def _fine_tune(self, fine_tunes: list[NodeFineTune]) -> list:
        results = []
        training = self.config.training
        for job in fine_tunes:
            self._put(job.adapter)
            loss = None
            if job.pairs and job.steps:
                loss = fine_tune(
                    self.peft,
                    self.tokenizer,
                    job.pairs,
                    job.steps,
                    training.learning_rate,
                    training.batch_size,
                    job.seed,
                    tokens=self.tokens["train"],
                )
            results.append((self._adapter_of_peft(), loss))
        return results

    def _answer(self, jobs: list[Job]) -> list[list[str]]:
        answers = []
        for node, prompts, seed in jobs:
            self._put(self.initial if node is None else self.weights[node])
            answers.append(self._generate(prompts, seed))
        return answers

    @torch.no_grad()
    def _generate(self, prompts: list[str], seed: int | None) -> list[str]:
        if seed is not None:
            torch.manual_seed(seed)
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True)
        output = self.peft.generate(
            **batch,
            max_new_tokens=self.config.generation.new_tokens(self.config.world),
            do_sample=seed is not None,
            temperature=1.0 if seed is not None else None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        generated = int((new_tokens != self.tokenizer.pad_token_id).sum())
        self.tokens["generate"].add(int(batch["attention_mask"].sum()) + generated, output.numel())
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _put(self, adapter: dict[str, torch.Tensor]) -> None:
        state = {f"{PEFT_PREFIX}{name}.weight": tensor for name, tensor in adapter.items()}
        set_peft_model_state_dict(self.peft, state)

    def _adapter_of_peft(self) -> dict[str, torch.Tensor]:
        state = get_peft_model_state_dict(self.peft)
        return {name.removeprefix(PEFT_PREFIX).removesuffix(".weight"): t.detach().clone() for name, t in state.items()}
