"""A shard of nodes and the per-node work of every phase, as a plain Python object.

A node is its trainable weights (a LoRA adapter, or all weights in full fine-tuning); the
shard owns one model into which it loads a node's weights to work for that node. Each
cycle's fine-tune starts a fresh optimizer, as a lab's periodic fine-tuning job does, so
the weights are a node's whole state.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ecosystem.config import Anchor, Config, DiverseData, GuardFilter, Quarantine, Rehearsal
from ecosystem.generation import Job
from ecosystem.generation.hf import HFEngine
from ecosystem.generation.vllm_engine import VLLMEngine
from ecosystem.models.base import load_checkpoint
from ecosystem.seeding import Phase, rng, torch_seed
from ecosystem.training import Pair, fine_tune
from ecosystem.world.grammar import Kind
from ecosystem.world.judge import Item, Outcome, rates
from ecosystem.world.worlds import open_world
from poisoning.attacks import Attack, backdoor_attacked, extra_steps, poison_pairs, shares_benign_only
from poisoning.defenses import Guard, anchor, deployed, guard_filter, quarantined, rehearsal_pairs

NODE_THREADS = 1  # fixed, so that a node's results do not depend on where it runs

Weights = dict[str, torch.Tensor]
InEdges = dict[int, list[tuple[int, float]]]  # receiver -> [(sender, share)]


@dataclass
class Output:
    """What a node publishes in a cycle: the pairs it shares, and its refusal of the quarantine
    probes (None when no node quarantines)."""

    pairs: list[Pair]
    probe_refusal: float | None = None


def receive(
    in_edges: InEdges, outputs: dict[int, Output], seed: int, cycle: int, receiver: int, cut: set[int]
) -> list[Pair]:
    """Exchange: along each edge u→v (u not cut), v receives a random share (the edge weight) of u's pairs."""
    received: list[Pair] = []
    for sender, share in sorted(in_edges.get(receiver, [])):
        if sender in cut:
            continue
        pairs = outputs[sender].pairs
        chosen = rng(seed, cycle, sender, Phase.exchange, receiver).choice(
            len(pairs), size=round(share * len(pairs)), replace=False
        )
        received += [pairs[i] for i in sorted(chosen)]
    return received


class Shard:
    def __init__(
        self, config: Config, checkpoint: Path, domains: dict[int, str], in_edges: InEdges, attacks: list[Attack]
    ) -> None:
        torch.set_num_threads(NODE_THREADS)
        self.config = config
        self.domains = domains
        self.in_edges = in_edges
        self.attacks = attacks
        self.world = open_world(config)
        dtype = "float32" if config.world.kind == "tiny" else config.world.dtype
        model, self.tokenizer = load_checkpoint(checkpoint, dtype)
        if config.training.method == "lora":
            torch.manual_seed(torch_seed(config.seed, 0, -1, Phase.init))
            lora = LoraConfig(
                r=config.training.lora_rank,
                lora_alpha=config.training.lora_alpha,
                target_modules="all-linear",
                lora_dropout=0.0,
            )
            model = get_peft_model(model, lora)
        # A host given a GPU computes on it (Ray sets which one the actor sees).
        self.model = model.to("cuda" if config.hosting.num_gpus and torch.cuda.is_available() else "cpu")
        self.model.eval()
        self.trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.initial = self._current_weights()
        self.weights: dict[int, Weights] = dict.fromkeys(domains, self.initial)
        self.saved: set[int] = set()  # nodes whose current adapter is on disk, for the vllm engine
        new_tokens = config.generation.new_tokens(config.world)
        if config.generation.engine == "vllm":
            self.adapters = tempfile.TemporaryDirectory(prefix="ecosystem-adapters-")
            self.engine = VLLMEngine(
                checkpoint,
                max_loras=min(len(domains), config.generation.max_loras),
                lora_rank=config.training.lora_rank,
                max_new_tokens=new_tokens,
                memory_utilization=config.generation.memory_utilization,
                dtype=dtype,
                adapter=self._adapter,
            )
        else:
            self.engine = HFEngine(self.model, self.tokenizer, self._load, new_tokens)
        self.eval_items = self.world.evaluation_set(
            config.evaluation.prompts_per_set, backdoor=backdoor_attacked(attacks)
        )
        self.base_outcomes = self._grade([(None, self.eval_items)])[0][1]
        quarantine = next((d for d in config.defense if isinstance(d, Quarantine)), None)
        self.probes = self.world.probe_set(quarantine.probes) if quarantine else []
        guard = next((d for d in config.defense if isinstance(d, GuardFilter)), None)
        self.guard = Guard(self.world, guard, config.seed) if guard else None

    @property
    def nodes(self) -> list[int]:
        return sorted(self.domains)

    def generate(self, cycle: int) -> dict[int, Output]:
        """Traffic and generation: each node answers its cycle's prompts by sampling (and the
        quarantine probes greedily), all in one engine call."""
        seed = self.config.seed
        traffic = {
            node: self.world.traffic(self.domains[node], self.config.traffic, rng(seed, cycle, node, Phase.traffic))
            for node in self.nodes
        }
        jobs: list[Job] = [
            (node, [r.prompt for r in traffic[node]], torch_seed(seed, cycle, node, Phase.generate))
            for node in self.nodes
        ]
        probes = [(node, [p.prompt for p in self.probes], None) for node in self.nodes if self.probes]
        answers = self.engine.answer(jobs + probes)
        outputs = {}
        for node, requests, responses in zip(self.nodes, traffic.values(), answers[: len(jobs)], strict=True):
            pairs = [(r.prompt, response) for r, response in zip(requests, responses, strict=True)]
            if shares_benign_only(self.attacks, node):
                pairs = [pair for pair, r in zip(pairs, requests, strict=True) if r.kind is Kind.benign]
            outputs[node] = Output(pairs)
        for (node, _, _), responses in zip(probes, answers[len(jobs) :], strict=True):
            outcomes = self.world.grade(self.probes, responses)
            outputs[node].probe_refusal = rates(self.probes, outcomes)["refusal_rate"]
        return outputs

    def train(self, cycle: int, outputs: dict[int, Output]) -> dict[int, dict]:
        """Exchange, poison and fine-tune: each node trains on its own task data, the pairs it
        receives from `outputs` (its in-neighbours'), poison, and what its defenses add."""
        seed, training, defenses = self.config.seed, self.config.training, self.config.defense
        records = {}
        for node in self.nodes:
            domain = self.domains[node]
            record: dict = {"pairs_filtered": None, "guard_precision": None, "guard_recall": None, "edges_cut": None}
            cut: set[int] = set()
            if quarantine := deployed(defenses, Quarantine, node):
                senders = {sender for sender, _ in self.in_edges.get(node, [])}
                cut = quarantined(quarantine, {s: outputs[s].probe_refusal for s in senders})
                record["edges_cut"] = len(cut)
            received = receive(self.in_edges, outputs, seed, cycle, node, cut)
            record["pairs_received"] = len(received)
            if deployed(defenses, GuardFilter, node):
                received, guarded = guard_filter(self.guard, self.world, received)
                record.update(guarded)
            own = self.world.task_pairs(
                domain,
                training.own_examples,
                rng(seed, cycle, node, Phase.own_data),
                diverse=deployed(defenses, DiverseData, node) is not None,
            )
            poison = poison_pairs(self.attacks, self.world, seed, cycle, node, domain)
            pairs = own + received + poison
            if rehearsal := deployed(defenses, Rehearsal, node):
                pairs += rehearsal_pairs(rehearsal, self.world, seed, cycle, node, len(pairs))
            anchored = deployed(defenses, Anchor, node)
            steps = training.steps + extra_steps(self.attacks, cycle, node)
            self._load(node)
            loss = None
            if pairs and steps:
                loss = fine_tune(
                    self.model,
                    self.tokenizer,
                    pairs,
                    steps,
                    training.learning_rate,
                    training.batch_size,
                    torch_seed(seed, cycle, node, Phase.finetune),
                    regularizer=anchor(anchored, self.initial) if anchored else None,
                )
            self._set(node, self._current_weights())
            records[node] = {**record, "poison_examples": len(poison), "train_loss": loss}
        return records

    def evaluate(self) -> dict[int, dict]:
        """Safety, harmful capability, helpfulness and over-refusal on the held-out sets, and drift:
        the share of held-out prompts whose graded outcome differs from the aligned base's."""
        records = {}
        graded = self._grade([(node, self.eval_items) for node in self.nodes])
        for node, outcomes in graded:
            changed = sum(o is not b for o, b in zip(outcomes, self.base_outcomes, strict=True))
            records[node] = {
                **rates(self.eval_items, outcomes, self.domains[node]),
                "drift": changed / len(outcomes),
            }
        return records

    def state(self) -> dict[int, bytes]:
        """Each node's weights as safetensors bytes: everything needed to resume it."""
        return {node: save_tensors({k: v.cpu() for k, v in self.weights[node].items()}) for node in self.nodes}

    def restore(self, states: dict[int, bytes]) -> None:
        for node in self.nodes:
            self._set(node, load_tensors(states[node]))

    def _set(self, node: int, weights: Weights) -> None:
        self.weights[node] = weights
        self.saved.discard(node)

    def _grade(self, jobs: list[tuple[int | None, list[Item]]]) -> list[tuple[int | None, list[Outcome]]]:
        """Each node's greedy responses to its items, graded by the judge: [(node, outcomes)]."""
        answers = self.engine.answer([(node, [item.prompt for item in items], None) for node, items in jobs])
        return [
            (node, self.world.grade(items, responses)) for (node, items), responses in zip(jobs, answers, strict=True)
        ]

    def _adapter(self, node: int | None) -> Path | None:
        """The PEFT directory of `node`'s current adapter (written if it changed); None for the base."""
        if node is None:
            return None
        directory = Path(self.adapters.name) / f"node-{node}"
        if node not in self.saved:
            self._load(node)
            self.model.save_pretrained(directory)
            self.saved.add(node)
        return directory

    def _load(self, node: int | None) -> None:
        with torch.no_grad():
            for name, param in self.trainable.items():
                param.copy_((self.initial if node is None else self.weights[node])[name])

    def _current_weights(self) -> Weights:
        return {name: param.detach().clone() for name, param in self.trainable.items()}
