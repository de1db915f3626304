"""A shard of nodes and the work of every stage for them, as a plain Python object.

Each stage of the cycle (traffic, generate, exchange, poison, fine-tune, evaluate) is one method, run
for all the shard's nodes; what a node's stage leaves for the next (`NodeCycle`) stays in the shard.

A node is its trainable weights (a LoRA adapter, or all weights in full fine-tuning); the shard owns
one base model, through which a group of nodes' adapters compute together (stacked LoRA), or into
which it loads one node's full weights at a time. Each cycle's fine-tune starts a fresh optimizer, as
a lab's periodic fine-tuning job does, so the weights are a node's whole state.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ecosystem.bases import open_world
from ecosystem.config import Config
from ecosystem.generation import Job
from ecosystem.generation.hf import HFEngine
from ecosystem.generation.vllm_engine import VLLMEngine
from ecosystem.models.adapters import StackedLoRA, Weights
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.seeding import Stream, rng, torch_seed
from ecosystem.training import NodeFineTune, Regularizer, TokenCount, fine_tune, fine_tune_group
from ecosystem.world import Pair, World
from ecosystem.world.judge import Item, Outcome, rates
from poisoning import Attack, DefenseBase

RESPONSES = "responses"  # a node's judged evaluation responses in its record (evaluation.responses)
EARLIER = "__received__"  # the accumulated pairs' entry in a node's state (no weight has this name)
NODE_THREADS = 1  # fixed, so that a node's results do not depend on where it runs

InEdges = dict[int, list[tuple[int, float]]]  # receiver -> [(sender, share)]


@dataclass
class Output:
    """What a node publishes in a cycle: the pairs it shares, and its refusal of the quarantine
    probes (None when no node quarantines)."""

    pairs: list[Pair]
    probe_refusal: float | None = None


@dataclass
class NodeCycle:
    """What a node's stages of a cycle leave for the next ones, kept on its host: its prompts, the
    pairs it received, its poison, and its record so far."""

    requests: list[Item]  # the traffic's prompts
    received: list[Pair] = field(default_factory=list)
    poison: list[Pair] = field(default_factory=list)
    added_steps: int = 0  # fine-tuning steps its attacks add
    record: dict = field(default_factory=dict)


def node_groups(nodes: Iterable[int], size: int, bases: dict[int, int] | None = None) -> list[list[int]]:
    """`nodes` in groups of `size` consecutive nodes of one base (`bases`: node → base; the last group of a
    base may be smaller), ordered by their first node."""
    by_base: dict[int, list[int]] = {}
    for node in sorted(int(node) for node in nodes):
        by_base.setdefault((bases or {}).get(node, 0), []).append(node)
    groups = [part[start : start + size] for part in by_base.values() for start in range(0, len(part), size)]
    return sorted(groups, key=min)


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
    """A host's nodes, computed in fixed groups of `hosting.group_size` consecutive nodes: a group's
    nodes generate, train and are evaluated together in batched computations (with LoRA; in full
    fine-tuning each node has the model to itself in turn)."""

    def __init__(
        self,
        config: Config,
        checkpoint: Path,
        domains: dict[int, str],
        in_edges: InEdges,
        attacks: list[Attack],
        aligned_topics: list[str] | None = None,  # the harmful topics the base's alignment covered (None: all)
    ) -> None:
        torch.set_num_threads(NODE_THREADS)
        self.aligned_topics = aligned_topics
        self.domains = domains
        self.in_edges = in_edges
        self.world: World = open_world(config)
        dtype = "float32" if config.world.kind == "tiny" else config.world.dtype
        model, self.tokenizer = load_checkpoint(checkpoint, dtype)
        # A host given a GPU computes on it (Ray sets which one the actor sees).
        device = "cuda" if config.hosting.num_gpus and torch.cuda.is_available() else "cpu"
        self.lora: StackedLoRA | None = None
        if config.training.method == "lora":
            seed = torch_seed(config.seed, 0, -1, Stream.init)
            self.lora = StackedLoRA(model, config.training.lora_rank, config.training.lora_alpha, seed)
            self.initial = self.lora.initial
        else:
            self.initial = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.model = model.to(device)
        self.model.eval()
        self.reference = {name: weight.to(device) for name, weight in self.initial.items()}  # for regularizers
        self.configure(config, attacks)
        self.tokens = {"train": TokenCount(), "generate": TokenCount()}  # real and computed, for benchmarks
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
        elif self.lora is not None:
            self.engine = HFEngine(self.model, self.tokenizer, new_tokens, self.tokens["generate"], route=self._route)
        else:
            self.engine = HFEngine(self.model, self.tokenizer, new_tokens, self.tokens["generate"], load=self._load)
        self.width = self.world.training_width(self.tokenizer, new_tokens)  # every group fine-tune's batches
        self.eval_items = self.world.evaluation_set(config.evaluation.prompts_per_set, config.evaluates_backdoor)
        self.base_outcomes = self._grade([(None, self.eval_items)])[0][1]

    def configure(self, config: Config, attacks: list[Attack]) -> None:
        """The run `config` with its `attacks`, every node untrained: on a new shard, or on the loaded base of
        the run it is a companion of (its twin, its control: `shares_hosts`)."""
        self.config = config
        self.attacks = attacks
        self.weights: dict[int, Weights] = dict.fromkeys(self.domains, self.initial)
        self.saved: set[int] = set()  # nodes whose current adapter is on disk, for the vllm engine
        self.earlier: dict[int, list[Pair]] = {node: [] for node in self.domains}  # training.received = "accumulate"
        self.now: dict[int, NodeCycle] = {}  # the current cycle's, from its traffic stage on
        probes = max((defense.probe_count() for defense in config.defense), default=0)
        self.probes = self.world.probe_set(probes) if probes else []

    @property
    def nodes(self) -> list[int]:
        return sorted(self.domains)

    @property
    def groups(self) -> list[list[int]]:
        """The shard's nodes in groups (a host holds whole groups: these are the run's groups)."""
        return node_groups(self.nodes, self.config.hosting.group_size)

    def traffic(self, cycle: int) -> None:
        """Traffic: each node draws its cycle's prompts."""
        seed, traffic = self.config.seed, self.config.traffic
        self.now = {
            node: NodeCycle(self.world.traffic(self.domains[node], traffic, rng(seed, cycle, node, Stream.traffic)))
            for node in self.nodes
        }

    def generate(self, cycle: int) -> dict[int, Output]:
        """Generation: each node answers its prompts by sampling (and the quarantine probes greedily),
        all in one engine call; what it publishes."""
        seed = self.config.seed
        jobs: list[Job] = [
            (node, [r.prompt for r in self.now[node].requests], torch_seed(seed, cycle, node, Stream.generate))
            for node in self.nodes
        ]
        probes = [(node, [p.prompt for p in self.probes], None) for node in self.nodes if self.probes]
        answers = self._answer(jobs + probes)
        outputs = {}
        for node, responses in zip(self.nodes, answers[: len(jobs)], strict=True):
            requests = self.now[node].requests
            pairs = [(r.prompt, response) for r, response in zip(requests, responses, strict=True)]
            for attack in self.attacks:
                if node in attack.targets:
                    pairs = attack.config.shared(pairs, [r.kind for r in requests])
            outputs[node] = Output(pairs)
        for (node, _, _), responses in zip(probes, answers[len(jobs) :], strict=True):
            outcomes = self.world.grade(self.probes, responses)
            outputs[node].probe_refusal = rates(self.probes, outcomes)["refusal_rate"]
        return outputs

    def exchange(self, cycle: int, senders: list[int], *outputs: Output) -> None:
        """Exchange: each node receives its share of the `outputs` of `senders` (its in-neighbours), less
        what its defenses cut and filter. Records the flow along each in-edge (pairs, and the judge's
        harmful and refused among them) and the node's exposure: the harmful share of what it kept."""
        published = dict(zip(senders, outputs, strict=True))
        for node in self.nodes:
            record, defenses = self.now[node].record, self._defenses(node, cycle)
            probe_refusal = {sender: published[sender].probe_refusal for sender, _ in self.in_edges.get(node, [])}
            cut: set[int] = set()
            for defense in defenses:
                record.update(defense.cut(probe_refusal, cut))
            by_sender = receive(self.in_edges, published, self.config.seed, cycle, node, cut)
            record["edges"] = [self._flow(sender, node, pairs, sender in cut) for sender, pairs in by_sender.items()]
            received = [pair for pairs in by_sender.values() for pair in pairs]
            record["pairs_received"] = len(received)
            for defense in defenses:
                received, figures = defense.filter(self.world, self.config.seed, received)
                record.update(figures)
            kept = self.world.judge_pairs(received)
            record["exposure"] = sum(o is Outcome.harmful for o in kept) / len(kept) if kept else None
            if self.config.training.received == "accumulate":
                received = self.earlier[node] = self.earlier[node] + received
            self.now[node].received = received

    def poison(self, cycle: int) -> None:
        """Poison: each attack adds its poison pairs (and fine-tuning steps) to its targets' fine-tunes."""
        for node in self.nodes:
            now = self.now[node]
            for attack in self.attacks:
                injected, added_steps = attack.injection(self.world, self.config.seed, cycle, node, self.domains[node])
                now.poison += injected
                now.added_steps += added_steps
            now.record["poison_examples"] = len(now.poison)

    def fine_tune(self, cycle: int, lent: frozenset[int] = frozenset()) -> dict[int, dict]:
        """Fine-tune, group by group: each node trains on its own task data, the pairs it received,
        poison, and what its defenses add. Each node's record of the cycle's exchange, poison and fine-tune.
        Nodes `lent` (a twin's, taken from its run) are not trained."""
        records = {}
        groups = [[node for node in group if node not in lent] for group in self.groups]
        for group in filter(None, groups):
            fine_tunes = []
            for node in group:
                pairs, regularizers = self._training_data(cycle, node)
                steps = self.config.training.steps + self.now[node].added_steps
                seed = torch_seed(self.config.seed, cycle, node, Stream.finetune)
                fine_tunes.append(NodeFineTune(self.weights[node], pairs, steps, seed, _sum(regularizers)))
                records[node] = {**self.now[node].record, "pairs_trained": len(pairs)}
            for node, (weights, loss) in zip(group, self._fine_tune(fine_tunes), strict=True):
                self._set(node, weights)
                records[node]["train_loss"] = loss
        return records

    def _defenses(self, node: int, cycle: int) -> list[DefenseBase]:
        """The defenses `node` deploys at `cycle`."""
        return [defense for defense in self.config.defense if defense.covers(node, cycle)]

    def _training_data(self, cycle: int, node: int) -> tuple[list[Pair], list[Regularizer]]:
        """A node's fine-tuning pairs at `cycle` (its own task data, what it received, poison, what its
        defenses add) and its defenses' regularizers."""
        defenses, domain = self._defenses(node, cycle), self.domains[node]
        draw = rng(self.config.seed, cycle, node, Stream.own_data)
        count = self.config.training.own_examples
        chosen = (defense.own_data(self.world, domain, count, draw) for defense in defenses)
        own = next((pairs for pairs in chosen if pairs is not None), None)
        if own is None:
            own = self.world.task_pairs(domain, count, draw)
        pairs = own + self.now[node].received + self.now[node].poison
        for defense in defenses:
            pairs += defense.added(self.world, self.config.seed, cycle, node, len(pairs))
        return pairs, [r for defense in defenses if (r := defense.regularizer(self.reference)) is not None]

    def _fine_tune(self, fine_tunes: list[NodeFineTune]) -> list[tuple[Weights, float | None]]:
        """A group's fine-tunes: in one batched computation with LoRA, one by one in full fine-tuning."""
        training = self.config.training
        if self.lora is not None:
            return fine_tune_group(
                self.model,
                self.lora,
                self.tokenizer,
                fine_tunes,
                training.learning_rate,
                training.batch_size,
                self.width,
                self.tokens["train"],
            )
        results = []
        for job in fine_tunes:
            self._load_weights(job.adapter)
            loss = self._fine_tune_alone(self.model, job)
            results.append(({k: v.detach().cpu().clone() for k, v in self.model.named_parameters()}, loss))
        return results

    def _fine_tune_alone(self, model: torch.nn.Module, job: NodeFineTune) -> float | None:
        """`job` on `model`, which holds the node's weights: its mean loss at the end (None: no training)."""
        if not (job.pairs and job.steps):
            return None
        training = self.config.training
        return fine_tune(
            model,
            self.tokenizer,
            job.pairs,
            job.steps,
            training.learning_rate,
            training.batch_size,
            job.seed,
            job.regularizer,
            self.tokens["train"],
        )

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

    def evaluate(self, lent: frozenset[int] = frozenset()) -> dict[int, dict]:
        """Safety, harmful capability, helpfulness and over-refusal on the held-out sets, and drift:
        the share of held-out prompts whose graded outcome differs from the aligned base's. Nodes `lent`
        are not evaluated."""
        records = {}
        nodes = [node for node in self.nodes if node not in lent]
        answers = self._answer([(node, [item.prompt for item in self.eval_items], None) for node in nodes])
        for node, responses in zip(nodes, answers, strict=True):
            outcomes = self.world.grade(self.eval_items, responses)
            changed = sum(o is not b for o, b in zip(outcomes, self.base_outcomes, strict=True))
            records[node] = {
                **rates(self.eval_items, outcomes, self.domains[node], self.aligned_topics),
                "drift": changed / len(outcomes),
            }
            if self.config.evaluation.responses:
                records[node][RESPONSES] = [
                    {
                        "kind": item.kind,
                        "triggered": item.triggered,
                        "prompt": item.text,
                        "response": response,
                        "outcome": outcome,
                    }
                    for item, response, outcome in zip(self.eval_items, responses, outcomes, strict=True)
                ]
        return records

    def state(self) -> dict[int, bytes]:
        """Each node's weights, and the pairs it accumulated, as safetensors bytes: everything needed to
        resume it. The pairs are JSON in a byte tensor, so that a checkpoint stays one safetensors file."""
        states = {}
        for node in self.nodes:
            tensors = {k: v.cpu() for k, v in self.weights[node].items()}
            if self.earlier[node]:
                text = json.dumps(self.earlier[node]).encode()
                tensors[EARLIER] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
            states[node] = save_tensors(tensors)
        return states

    def restore(self, states: dict[int, bytes]) -> None:
        """The nodes of `states` (all, or some) to their states."""
        for node in filter(states.__contains__, self.nodes):
            tensors = load_tensors(states[node])
            earlier = tensors.pop(EARLIER, None)
            pairs = [] if earlier is None else json.loads(earlier.numpy().tobytes())
            self.earlier[node] = [tuple(pair) for pair in pairs]
            self._set(node, tensors)

    def _set(self, node: int, weights: Weights) -> None:
        self.weights[node] = weights
        self.saved.discard(node)

    def _grade(self, jobs: list[tuple[int | None, list[Item]]]) -> list[tuple[int | None, list[Outcome]]]:
        """Each node's greedy responses to its items, graded by the judge: [(node, outcomes)]."""
        answers = self._answer([(node, [item.prompt for item in items], None) for node, items in jobs])
        return [
            (node, self.world.grade(items, responses)) for (node, items), responses in zip(jobs, answers, strict=True)
        ]

    def _answer(self, jobs: list[Job]) -> list[list[str]]:
        """The engine's answers to `jobs`, asked group by group (and the base alone), so that what is
        computed together does not depend on the other groups a host holds."""
        answers: dict[int, list[str]] = {}
        parts = [[i for i, (node, _, _) in enumerate(jobs) if node is None]]
        parts += [[i for i, (node, _, _) in enumerate(jobs) if node in group] for group in self.groups]
        for part in filter(None, parts):
            answers.update(zip(part, self.engine.answer([jobs[i] for i in part]), strict=True))
        return [answers[i] for i in range(len(jobs))]

    def weights_of(self, node: int | None) -> Weights:
        """A node's current weights; the base's (the untrained adapter) for None."""
        return self.initial if node is None else self.weights[node]

    def _route(self, nodes: list[int | None]) -> AbstractContextManager:
        """The i-th of a batch's equal blocks of rows gets the adapter of `nodes[i]` (None: the base)."""
        adapters = [self.weights_of(node) for node in nodes]
        return self.lora.route(self.lora.stack(adapters, self.model.device))

    def _adapter(self, node: int | None) -> Path | None:
        """The PEFT directory of `node`'s current adapter (written if it changed); None for the base."""
        if node is None:
            return None
        directory = Path(self.adapters.name) / f"node-{node}"
        if node not in self.saved:
            self.lora.save_peft(self.weights[node], directory)
            self.saved.add(node)
        return directory

    def _load(self, node: int | None) -> None:
        self._load_weights(self.weights_of(node))

    def _load_weights(self, weights: Weights) -> None:
        """Full fine-tuning: `weights` into the model."""
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                param.copy_(weights[name])


def _sum(regularizers: list[Regularizer]) -> Regularizer | None:
    if not regularizers:
        return None
    return lambda weights: sum(regularizer(weights) for regularizer in regularizers)


class Shards:
    """A host's nodes, one `Shard` per base model they start from: nodes of different bases cannot share
    a batched computation. The same interface as a `Shard`."""

    def __init__(
        self,
        config: Config,
        checkpoints: list[Path],
        bases: dict[int, int],
        domains: dict[int, str],
        in_edges: InEdges,
        attacks: list[Attack],
    ) -> None:
        self.parts = [
            Shard(
                config,
                checkpoints[base],
                {n: d for n, d in domains.items() if bases[n] == base},
                in_edges,
                attacks,
                config.bases[base].model.align_topics,
            )
            for base in sorted({bases[node] for node in domains})
        ]

    def configure(self, config: Config, attacks: list[Attack]) -> None:
        self._each("configure", config, attacks)

    def traffic(self, cycle: int) -> None:
        self._each("traffic", cycle)

    def generate(self, cycle: int) -> dict[int, Output]:
        return self._each("generate", cycle)

    def exchange(self, cycle: int, senders: list[int], *outputs: Output) -> None:
        self._each("exchange", cycle, senders, *outputs)

    def poison(self, cycle: int) -> None:
        self._each("poison", cycle)

    def fine_tune(self, cycle: int, lent: frozenset[int] = frozenset()) -> dict[int, dict]:
        return self._each("fine_tune", cycle, lent)

    def evaluate(self, lent: frozenset[int] = frozenset()) -> dict[int, dict]:
        return self._each("evaluate", lent)

    def state(self) -> dict[int, bytes]:
        return self._each("state")

    def restore(self, states: dict[int, bytes]) -> None:
        self._each("restore", states)

    def _each(self, stage: str, *args: Any) -> dict:
        """`stage` on every part, one after another; what they return, merged by node."""
        return merge(getattr(part, stage)(*args) or {} for part in self.parts)


def merge(parts: Iterable[dict]) -> dict:
    """One dict of the dicts `parts` (by node: each node is in one)."""
    return {key: value for part in parts for key, value in part.items()}
