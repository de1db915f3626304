"""Generation engines: `HFEngine` (transformers, node by node) and `VLLMEngine` (one batched vLLM call
over every node's LoRA adapter). Both answer a list of jobs, one per node and prompt set."""

from __future__ import annotations

Job = tuple[int | None, list[str], int | None]  # (node, or None for the base; prompts; seed, or None for greedy)
