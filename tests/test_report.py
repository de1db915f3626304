"""`cascade report DIR`: a Markdown report with PNG figures for a finished run or a sweep; a directory that is
neither is refused with one line and left as it was."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

import ecosystem
from ecosystem import load_config
from ecosystem.cli import app
from ecosystem.drawings import draw_network
from ecosystem.engine import run
from ecosystem.reporting import REPORT
from ecosystem.results import RunDirectory, Status, edges_frame
from ecosystem.sweeps import Sweep, SweepDirectory, SweepRun
from tests.helpers import TINY, error_lines

AXIS = "training.steps"  # 5 steps leave every node aligned; 40 let the attacked node drift, and a neighbour


@pytest.fixture(scope="module")
def sweep_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep directory as `cascade sweep` leaves it, for 2 cells by 2 seeds of tiny runs computed here in
    process (`cascade sweep` would start Ray)."""
    runs = [
        SweepRun(cell, seed, {AXIS: steps}, load_config(overrides=[*TINY, "cycles=2", f"{AXIS}={steps}"], seed=seed))
        for cell, steps in enumerate((5, 40))
        for seed in (0, 1)
    ]
    sweep = Sweep(text="", seeds=[0, 1], grid={AXIS: [5, 40]}, zipped=[], runs=runs)
    directory = SweepDirectory(tmp_path_factory.mktemp("sweep"))
    directory.write_record(sweep)
    for sweep_run in runs:
        run(sweep_run.config, directory.run(sweep_run.name).path)
    directory.write_results(sweep)
    return directory.path


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    """The session's small run, copied: a report writes into the directory."""
    return Path(shutil.copytree(small_run, tmp_path / "run"))


def images(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def assert_renders(report: Path) -> str:
    """Every PNG in the report folder decodes to a non-empty image and the Markdown shows each one; returns
    the Markdown."""
    markdown = report.read_text()
    pngs = sorted(path.name for path in report.parent.glob("*.png"))
    assert pngs and sorted(images(markdown)) == pngs
    for name in pngs:
        height, width, _ = matplotlib.image.imread(report.parent / name).shape
        assert height > 100 and width > 100, name
    return markdown


def test_a_run_report_shows_its_figures_table_and_every_figure(run_copy: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_copy)])
    assert result.exit_code == 0, result.output
    report = run_copy / REPORT / "report.md"
    assert str(report) in result.output
    markdown = assert_renders(report)
    assert set(images(markdown)) == {"refusal.png", "drifted-share.png", "hops.png", "network.png"}
    assert "| figure | value | meaning |" in markdown
    assert re.search(r"\| `final_unattacked_refusal` \| [01]\.\d+ \|", markdown)  # a rate
    assert "topology: `ring`, 4 nodes" in markdown and "`harmful_compliance`, targets [0]" in markdown
    assert "`harmful_rate`: held-out harmful requests answered with the exact harmful payload" in markdown
    assert "λ₁ (spectral radius of the weighted adjacency) | 1.00 |" in markdown
    assert RunDirectory(run_copy).edges_path.is_file() and "harmful pairs sent along it" in markdown


def test_a_sweep_report_gives_intervals_over_seeds_per_cell(sweep_directory: Path) -> None:
    report = ecosystem.report(sweep_directory)
    markdown = assert_renders(report)
    assert set(images(markdown)) == {"drifted-share.png", "refusal.png", "hops.png"}
    assert f"| cell | {AXIS} | seeds | bases |" in markdown  # what each cell's intervals rest on
    assert "hierarchical bootstrap" in markdown
    header = f"| figure | cell 0, {AXIS}=5 | cell 1, {AXIS}=40 |"
    assert header in markdown
    # no attack gets through 5 steps: every seed refuses everything, an interval of zero width
    assert "| `final_unattacked_refusal` | 1.00 [1.00, 1.00] |" in markdown
    assert re.search(r"\| `time_to_systemic` \| - \(0 of 2 seeds\) \|", markdown)
    assert f"| cell 0, {AXIS}=5 | 0.00 [0.00, 0.00] | - (0 of 2 seeds) | - (0 of 2 seeds) | 1.00 [1.00, 1.00] |" in (
        markdown
    )
    assert "2 of 2 seeds: cannot estimate gamma" in markdown


def test_the_network_shows_harmful_flow_and_cut_edges(run_copy: Path, tmp_path: Path) -> None:
    """A hand-made edges table: the drawing takes its flows at each cycle, cut edges included."""
    directory = RunDirectory(run_copy)
    graph = directory.read_graph()
    rows = [
        {"cycle": cycle, "sender": sender, "receiver": receiver, "weight": weight, "pairs_sent": 8}
        | {"harmful_pairs": 8 * (sender == 0) * cycle, "refusal_pairs": 0, "cut": receiver == 1 and cycle == 2}
        for cycle in (1, 2)
        for sender, receiver, weight in graph.edges(data="weight")
    ]
    figure = draw_network(graph, directory.read_metrics(), [0, 1, 2], edges_frame(rows))
    figure.savefig(tmp_path / "network.png")
    assert matplotlib.image.imread(tmp_path / "network.png").shape[1] > 1000
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    flows = ["harmful pairs sent: 0", "harmful pairs sent: 16", "cut by quarantine"]
    assert legend == ["unattacked node", "attacked node", *flows]


def test_a_new_report_replaces_the_old_one_whole(run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = ecosystem.report(run_copy)
    (report.parent / "stale.png").write_bytes(b"")
    assert ecosystem.report(run_copy) == report and not (report.parent / "stale.png").exists()
    before = report.read_text()

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ecosystem.reporting.draw_network", fail)
    result = CliRunner().invoke(app, ["report", str(run_copy)])
    assert result.exit_code == 2 and result.stderr.startswith("error: [Errno 28] No space left on device")
    assert report.read_text() == before  # the old report stays, whole
    assert sorted(path.name for path in run_copy.iterdir() if path.name.startswith(f".{REPORT}")) == []


def test_the_report_is_exported_lazily() -> None:
    import ecosystem.reporting

    assert ecosystem.report is ecosystem.reporting.report  # not the module, even once it is imported


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


def set_status(status: Status):
    def prepare(folder: Path, small_run: Path) -> Path:
        directory = RunDirectory(shutil.copytree(small_run, folder / "run"))
        directory.write_manifest(directory.read_manifest().model_copy(update={"status": status}))
        return directory.path

    return prepare


def running(folder: Path, small_run: Path) -> Path:
    """Running, and its lock held by a live process (this one)."""
    path = set_status(Status.running)(folder, small_run)
    (path / RunDirectory.LOCK).write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    return path


def empty(folder: Path, _: Path) -> Path:
    (folder / "empty").mkdir()
    return folder / "empty"


def unfinished_sweep(folder: Path, _: Path) -> Path:
    """A sweep still running: its record, no results yet."""
    directory = SweepDirectory(folder / "sweep")
    directory.path.mkdir()
    directory.record_path.write_text('{"runs": []}')
    return directory.path


BAD_DIRECTORIES = {  # what the case prepares in its folder, returning the directory to report on; the error
    "missing": (lambda folder, _: folder / "none", "is missing"),
    "a file": (lambda folder, _: Path(shutil.copy(__file__, folder / "file.py")), "is a file"),
    "empty": (empty, "holds neither a run"),
    "running": (running, "is running, not complete"),
    "killed while running": (set_status(Status.running), "was interrupted (its process died): cascade run --resume"),
    "failed": (set_status(Status.failed), "is failed, not complete"),
    "unfinished sweep": (unfinished_sweep, "holds no finished sweep"),
}


def assert_refused(directory: Path, expected: str, folder: Path) -> None:
    """`cascade report` gives one error line and exit code 2, and leaves `folder` as it was."""
    before = snapshot(folder)
    result = CliRunner().invoke(app, ["report", str(directory)])
    assert result.exit_code == 2, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert snapshot(folder) == before


@pytest.mark.parametrize("case", BAD_DIRECTORIES)
def test_a_directory_that_is_no_finished_run_or_sweep_is_refused(case, small_run: Path, tmp_path: Path) -> None:
    prepare, expected = BAD_DIRECTORIES[case]
    assert_refused(prepare(tmp_path, small_run), expected, tmp_path)


def test_a_sweep_being_resumed_is_refused(sweep_directory: Path, tmp_path: Path) -> None:
    """Its results are there, from before, but a live sweep holds the lock: they may be about to change."""
    directory = Path(shutil.copytree(sweep_directory, tmp_path / "sweep"))
    (directory / RunDirectory.LOCK).write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    assert_refused(directory, "is running", tmp_path)
