"""Stacked LoRA adapters: many nodes' adapters applied to one batch, each to its own rows.

Every linear layer of the model but the output head gets a low-rank update B·A (the PEFT "all-linear"
LoRA). The base weights are applied to all rows of a batch in one matmul; the adapters are stacked
along a leading dimension and applied with `torch.bmm`, so that a batch holding rows of many nodes
costs one forward pass. A node's adapter is a plain dict of tensors, named and shaped as PEFT names
them (`<module>.lora_A` [rank, in], `<module>.lora_B` [out, rank]), which is what vLLM loads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

Weights = dict[str, torch.Tensor]
PEFT_PREFIX = "base_model.model."  # before a module's name in PEFT's adapter files


def peft_config(rank: int, alpha: float) -> LoraConfig:
    """PEFT's description of the adapters: LoRA on every linear layer but the output head."""
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.0)


class LoRALinear(nn.Module):
    """A frozen linear layer plus the stacked low-rank updates its caller routes to the batch's rows.

    With `down` [S, in, rank] and `up` [S, rank, out] set, the rows of the input are split into S
    equal consecutive blocks, block s getting adapter s."""

    def __init__(self, base: nn.Linear, scaling: float) -> None:
        super().__init__()
        self.base, self.scaling = base, scaling
        self.down: torch.Tensor | None = None
        self.up: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down is None:
            return self.base(x)
        blocks = x.reshape(self.down.shape[0], -1, x.shape[-1])
        # Many rows per adapter: one matmul per block with its merged weights computes faster than
        # two thin matmuls through the rank-r bottleneck.
        out = self.merged(blocks) if blocks.shape[1] >= blocks.shape[2] else self.low_rank(blocks)
        return out.reshape(*x.shape[:-1], -1)

    def merged(self, blocks: torch.Tensor) -> torch.Tensor:
        """Each block times its adapter's merged weights W + s·BA."""
        out = torch.bmm(blocks, torch.baddbmm(self.base.weight.T, self.down, self.up, alpha=self.scaling))
        return out if self.base.bias is None else out + self.base.bias

    def low_rank(self, blocks: torch.Tensor) -> torch.Tensor:
        """The base layer plus each block's update s·BA, through the rank-r bottleneck."""
        return self.base(blocks) + self.scaling * torch.bmm(torch.bmm(blocks, self.down), self.up)


class StackedLoRA:
    """Installs `LoRALinear` into every linear layer of `model` but its output head, and routes
    adapters to the rows of a batch."""

    def __init__(self, model: nn.Module, rank: int, alpha: float, seed: int) -> None:
        self.rank, self.alpha = rank, alpha
        # The untrained adapter, exactly as PEFT initialises "all-linear" LoRA from `seed` (A as a
        # Kaiming-uniform layer, B zero: it leaves the base unchanged).
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, peft_config(rank, alpha))
        self.initial: Weights = {
            name.removeprefix(PEFT_PREFIX).removesuffix(".weight"): tensor.detach().clone()
            for name, tensor in get_peft_model_state_dict(peft_model).items()
        }
        peft_model.unload()  # the plain model again
        model.requires_grad_(False)
        head = model.get_output_embeddings()
        self.layers: dict[str, LoRALinear] = {}
        for name, module in list(model.named_modules()):
            if isinstance(module, nn.Linear) and module is not head:
                parent, _, child = name.rpartition(".")
                layer = LoRALinear(module, alpha / rank)
                setattr(model.get_submodule(parent), child, layer)
                self.layers[name] = layer

    def stack(self, adapters: Sequence[Weights], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The adapters stacked per layer, in the layout `route` takes: `down` [S, in, rank] and
        `up` [S, rank, out] (PEFT's A and B, transposed)."""
        stacks = {}
        for name in self.layers:
            stacks[f"{name}.down"] = torch.stack([a[f"{name}.lora_A"].T for a in adapters]).to(device)
            stacks[f"{name}.up"] = torch.stack([a[f"{name}.lora_B"].T for a in adapters]).to(device)
        return stacks

    def unstack(self, stacks: dict[str, torch.Tensor], index: int) -> Weights:
        """Adapter `index` of `stacks`, as PEFT names and shapes it (views: detach and clone to keep)."""
        weights = {}
        for name in self.layers:
            weights[f"{name}.lora_A"] = stacks[f"{name}.down"][index].T
            weights[f"{name}.lora_B"] = stacks[f"{name}.up"][index].T
        return weights

    @contextmanager
    def route(self, stacks: dict[str, torch.Tensor]) -> Iterator[None]:
        """Within the block, the model applies `stacks` to its inputs: adapter s to the s-th of as
        many equal consecutive blocks of rows."""
        for name, layer in self.layers.items():
            layer.down, layer.up = stacks[f"{name}.down"], stacks[f"{name}.up"]
        try:
            yield
        finally:
            for layer in self.layers.values():
                layer.down = layer.up = None

    def save_peft(self, adapter: Weights, directory: Path) -> None:
        """`adapter` as a PEFT adapter directory (what vLLM's LoRARequest loads)."""
        config = peft_config(self.rank, self.alpha)
        config.target_modules = sorted({name.rpartition(".")[2] for name in self.layers})
        config.save_pretrained(directory)
        tensors = {f"{PEFT_PREFIX}{name}.weight": value.contiguous().cpu() for name, value in adapter.items()}
        save_file(tensors, directory / "adapter_model.safetensors")
