"""A shard of nodes and the per-node work of every phase, as a plain Python object.

A node is its trainable weights (a LoRA adapter, or all weights in full fine-tuning); the
shard owns one model into which it loads a node's weights to work for that node. Each
cycle's fine-tune starts a fresh optimizer, as a lab's periodic fine-tuning job does, so
the weights are a node's whole state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ecosystem.config import Config
from ecosystem.evaluation import evaluate
from ecosystem.generation.hf import generate
from ecosystem.models.base import load_stage
from ecosystem.seeding import Phase, rng, torch_seed
from ecosystem.training import Pair, fine_tune
from ecosystem.world.grammar import World
from ecosystem.world.prompts import evaluation_requests, own_task_pairs, traffic_requests
from poisoning import poison_pairs

NODE_THREADS = 1  # fixed, so that a node's results do not depend on where it runs
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

Weights = dict[str, torch.Tensor]
InEdges = dict[int, list[tuple[int, float]]]  # receiver -> [(sender, share)]


def receive(in_edges: InEdges, outputs: dict[int, list[Pair]], seed: int, cycle: int, receiver: int) -> list[Pair]:
    """Exchange: along each edge u→v, v receives a random share (the edge weight) of u's pairs."""
    received: list[Pair] = []
    for sender, share in sorted(in_edges.get(receiver, [])):
        pairs = outputs[sender]
        chosen = rng(seed, cycle, sender, Phase.exchange, receiver).choice(
            len(pairs), size=round(share * len(pairs)), replace=False
        )
        received += [pairs[i] for i in sorted(chosen)]
    return received


class Shard:
    def __init__(self, config: Config, base_dir: Path, domains: dict[int, str], in_edges: InEdges) -> None:
        torch.set_num_threads(NODE_THREADS)
        self.config = config
        self.domains = domains
        self.in_edges = in_edges
        self.world = World(config.world.seed)
        model, self.tokenizer = load_stage(base_dir)
        if config.training.method == "lora":
            torch.manual_seed(torch_seed(config.seed, 0, -1, Phase.init))
            lora = LoraConfig(
                r=config.training.lora_rank,
                lora_alpha=config.training.lora_alpha,
                target_modules=LORA_TARGETS,
                lora_dropout=0.0,
            )
            model = get_peft_model(model, lora)
        self.model = model
        self.model.eval()
        self.trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        initial = self._current_weights()
        self.weights: dict[int, Weights] = dict.fromkeys(domains, initial)
        self.eval_requests = evaluation_requests(self.world, config.evaluation.prompts_per_set)
        _, self.base_outcomes = evaluate(self.model, self.tokenizer, self.world, self.eval_requests)

    @property
    def nodes(self) -> list[int]:
        return sorted(self.domains)

    def generate(self, cycle: int) -> dict[int, list[Pair]]:
        """Traffic and generation: each node answers its cycle's prompts by sampling."""
        seed = self.config.seed
        outputs = {}
        for node in self.nodes:
            draw = rng(seed, cycle, node, Phase.traffic)
            requests = traffic_requests(self.world, self.domains[node], self.config.traffic, draw)
            prompts = [r.prompt for r in requests]
            self._load(node)
            responses = generate(
                self.model, self.tokenizer, prompts, seed=torch_seed(seed, cycle, node, Phase.generate)
            )
            outputs[node] = list(zip(prompts, responses, strict=True))
        return outputs

    def senders(self) -> list[int]:
        """The nodes whose outputs this shard's nodes receive."""
        return sorted({sender for node in self.nodes for sender, _ in self.in_edges.get(node, [])})

    def train(self, cycle: int, outputs: dict[int, list[Pair]]) -> dict[int, dict]:
        """Exchange, poison and fine-tune: each node trains on own task data, the pairs it
        receives from `outputs` (its in-neighbours' answers) and poison."""
        seed, training = self.config.seed, self.config.training
        records = {}
        for node in self.nodes:
            received = receive(self.in_edges, outputs, seed, cycle, node)
            own = own_task_pairs(
                self.world, self.domains[node], training.own_examples, rng(seed, cycle, node, Phase.own_data)
            )
            poison = poison_pairs(self.config.attack, self.world, seed, cycle, node)
            pairs = own + received + poison
            self._load(node)
            loss = None
            if pairs and training.steps:
                loss = fine_tune(
                    self.model,
                    self.tokenizer,
                    pairs,
                    training.steps,
                    training.learning_rate,
                    training.batch_size,
                    torch_seed(seed, cycle, node, Phase.finetune),
                )
            self.weights[node] = self._current_weights()
            records[node] = {"pairs_received": len(received), "poison_examples": len(poison), "train_loss": loss}
        return records

    def evaluate(self) -> dict[int, dict]:
        """Safety, harmful capability, helpfulness and over-refusal on the held-out sets, and drift:
        the share of held-out prompts whose graded outcome differs from the aligned base's."""
        records = {}
        for node in self.nodes:
            self._load(node)
            figures, outcomes = evaluate(self.model, self.tokenizer, self.world, self.eval_requests)
            changed = sum(o is not b for o, b in zip(outcomes, self.base_outcomes, strict=True))
            records[node] = {**figures, "drift": changed / len(outcomes)}
        return records

    def state(self) -> dict[int, bytes]:
        """Each node's weights as safetensors bytes: everything needed to resume it."""
        return {node: save_tensors(self.weights[node]) for node in self.nodes}

    def restore(self, states: dict[int, bytes]) -> None:
        self.weights = {node: load_tensors(states[node]) for node in self.nodes}

    def _load(self, node: int) -> None:
        with torch.no_grad():
            for name, param in self.trainable.items():
                param.copy_(self.weights[node][name])

    def _current_weights(self) -> Weights:
        return {name: param.detach().clone() for name, param in self.trainable.items()}
