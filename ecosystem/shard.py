"""A shard of nodes and the per-node work of every stage, as a plain Python object.

A node is its trainable weights (a LoRA adapter, or all weights in full fine-tuning); the
shard owns one model into which it loads a node's weights to work for that node. Each
cycle's fine-tune starts a fresh optimizer, as a lab's periodic fine-tuning job does, so
the weights are a node's whole state.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ecosystem.config import Config
from ecosystem.generation import Job
from ecosystem.generation.hf import HFEngine
from ecosystem.generation.vllm_engine import VLLMEngine
from ecosystem.models.base import load_checkpoint
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import fine_tune
from ecosystem.world import Pair
from ecosystem.world.judge import Item, Outcome, rates
from ecosystem.world.worlds import open_world
from poisoning import Attack

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
) -> dict[int, list[Pair]]:
    """Exchange: along each edge u→v, v receives a random share (the edge weight) of u's pairs, and
    nothing from a sender it cut. By sender, in the order of their ids."""
    received: dict[int, list[Pair]] = {}
    for sender, share in sorted(in_edges.get(receiver, [])):
        pairs = [] if sender in cut else outputs[sender].pairs
        chosen = rng(seed, cycle, sender, Stream.exchange, receiver).choice(
            len(pairs), size=round(share * len(pairs)), replace=False
        )
        received[sender] = [pairs[i] for i in sorted(chosen)]
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
            torch.manual_seed(torch_seed(config.seed, 0, -1, Stream.init))
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
        backdoor = any(attack.config.evaluates_trigger for attack in attacks)
        self.eval_items = self.world.evaluation_set(config.evaluation.prompts_per_set, backdoor=backdoor)
        self.base_outcomes = self._grade([(None, self.eval_items)])[0][1]
        probes = max((defense.probe_count() for defense in config.defense), default=0)
        self.probes = self.world.probe_set(probes) if probes else []

    @property
    def nodes(self) -> list[int]:
        return sorted(self.domains)

    def generate(self, cycle: int) -> dict[int, Output]:
        """Traffic and generation: each node answers its cycle's prompts by sampling (and the
        quarantine probes greedily), all in one engine call."""
        seed = self.config.seed
        traffic = {
            node: self.world.traffic(self.domains[node], self.config.traffic, rng(seed, cycle, node, Stream.traffic))
            for node in self.nodes
        }
        jobs: list[Job] = [
            (node, [r.prompt for r in traffic[node]], torch_seed(seed, cycle, node, Stream.generate))
            for node in self.nodes
        ]
        probes = [(node, [p.prompt for p in self.probes], None) for node in self.nodes if self.probes]
        answers = self.engine.answer(jobs + probes)
        outputs = {}
        for node, requests, responses in zip(self.nodes, traffic.values(), answers[: len(jobs)], strict=True):
            pairs = [(r.prompt, response) for r, response in zip(requests, responses, strict=True)]
            for attack in self.attacks:
                if node in attack.targets:
                    pairs = attack.config.shared(pairs, [r.kind for r in requests])
            outputs[node] = Output(pairs)
        for (node, _, _), responses in zip(probes, answers[len(jobs) :], strict=True):
            outcomes = self.world.grade(self.probes, responses)
            outputs[node].probe_refusal = rates(self.probes, outcomes)["refusal_rate"]
        return outputs

    def train(self, cycle: int, senders: list[int], *outputs: Output) -> dict[int, dict]:
        """Exchange, poison and fine-tune: each node trains on its own task data, the pairs it
        receives from the `outputs` of `senders` (its in-neighbours), poison, and what its defenses add."""
        published = dict(zip(senders, outputs, strict=True))
        records = {}
        for node in self.nodes:
            pairs, steps, regularizers, record = self._training_data(cycle, node, published)
            self._load(node)
            loss = None
            if pairs and steps:
                loss = fine_tune(
                    self.model,
                    self.tokenizer,
                    pairs,
                    steps,
                    self.config.training.learning_rate,
                    self.config.training.batch_size,
                    torch_seed(self.config.seed, cycle, node, Stream.finetune),
                    regularizer=_sum(regularizers),
                )
            self._set(node, self._current_weights())
            records[node] = {**record, "train_loss": loss}
        return records

    def _training_data(self, cycle: int, node: int, outputs: dict[int, Output]) -> tuple[list[Pair], int, list, dict]:
        """A node's fine-tune at `cycle`: its pairs and steps, the regularizers of its defenses, and
        what to record. Each attack on it and each defense it deploys acts through its hooks."""
        seed, domain = self.config.seed, self.domains[node]
        defenses = [defense for defense in self.config.defense if defense.covers(node)]
        record: dict = dict.fromkeys(("pairs_filtered", "guard_precision", "guard_recall", "edges_cut"))
        received = self._received(cycle, node, outputs, defenses, record)
        draw = rng(seed, cycle, node, Stream.own_data)
        count = self.config.training.own_examples
        chosen = (defense.own_data(self.world, domain, count, draw) for defense in defenses)
        own = next((pairs for pairs in chosen if pairs is not None), None)
        if own is None:
            own = self.world.task_pairs(domain, count, draw)
        poison: list[Pair] = []
        steps = self.config.training.steps
        for attack in self.attacks:
            injected, added_steps = attack.injection(self.world, seed, cycle, node, domain)
            poison += injected
            steps += added_steps
        pairs = own + received + poison
        for defense in defenses:
            pairs += defense.added(self.world, seed, cycle, node, len(pairs))
        regularizers = [r for defense in defenses if (r := defense.regularizer(self.initial)) is not None]
        return pairs, steps, regularizers, {**record, "poison_examples": len(poison)}

    def _received(self, cycle: int, node: int, outputs: dict[int, Output], defenses: list, record: dict) -> list[Pair]:
        """What `node` trains on of its in-neighbours' pairs, after its defenses cut senders and filter
        pairs. Records the flow along each in-edge (pairs, and the judge's harmful and refused among
        them) and the node's exposure: the harmful share of what it kept."""
        probe_refusal = {sender: outputs[sender].probe_refusal for sender, _ in self.in_edges.get(node, [])}
        cut: set[int] = set()
        for defense in defenses:
            if (senders := defense.cut(probe_refusal)) is not None:
                cut |= senders
                record["edges_cut"] = len(cut)
        by_sender = receive(self.in_edges, outputs, self.config.seed, cycle, node, cut)
        record["edges"] = [self._flow(sender, node, pairs, sender in cut) for sender, pairs in by_sender.items()]
        received = [pair for pairs in by_sender.values() for pair in pairs]
        record["pairs_received"] = len(received)
        for defense in defenses:
            received, figures = defense.filter(self.world, self.config.seed, received)
            record.update(figures)
        kept = self.world.judge_pairs(received)
        record["exposure"] = sum(o is Outcome.harmful for o in kept) / len(kept) if kept else None
        return received

    def _flow(self, sender: int, receiver: int, pairs: list[Pair], cut: bool) -> dict:
        outcomes = self.world.judge_pairs(pairs)
        return {
            "sender": sender,
            "receiver": receiver,
            "pairs_sent": len(pairs),
            "harmful_pairs": sum(o is Outcome.harmful for o in outcomes),
            "refusal_pairs": sum(o is Outcome.refused for o in outcomes),
            "cut": cut,
        }

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


def _sum(regularizers: list) -> Callable[[torch.nn.Module], torch.Tensor] | None:
    if not regularizers:
        return None
    return lambda model: sum(regularizer(model) for regularizer in regularizers)
