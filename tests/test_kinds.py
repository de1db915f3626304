"""`cascade kinds`: every attack, defense and topology family with its parameters, from their pydantic
fields; and the README's tables of them, checked against it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ecosystem import cli, kinds
from ecosystem.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
HEADINGS = {"### Attacks": "attacks", "### Defenses": "defenses", "### Families": "topologies"}
LISTED = re.compile(r"`(\w+)` \(([^,:;)]*)")  # `name` (default, ...) in a table's parameters column


def listed_kinds() -> dict[str, dict[str, dict[str, str]]]:
    """Group → kind → parameter → default, as `cascade kinds` lists them."""
    return {
        name: {kind.name: {p.name: p.default for p in kind.parameters} for kind in [*common, *group.kinds]}
        for name, group in kinds.groups().items()
        for common in [[group.common] if group.common else []]
    }


def readme_kinds() -> dict[str, dict[str, dict[str, str]]]:
    """The same, from the tables under the README's headings of attacks, defenses and families: a row's
    first cell names the kind (in backticks, else the parameters every kind takes), its `parameters`
    column lists `name` (default...)."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    group = column = None
    for line in README.read_text().splitlines():
        if line.startswith("#"):
            group = next((name for heading, name in HEADINGS.items() if line.startswith(heading)), None)
            column = None
        elif group and line.startswith("|") and not line.startswith("| ---") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if column is None:  # the header row
                column = next(index for index, cell in enumerate(cells) if cell.startswith("parameters"))
                continue
            named = re.match(r"`(\w+)`", cells[0])
            kind = named[1] if named else cells[0]
            tables.setdefault(group, {})[kind] = {
                name: default.strip() for name, default in LISTED.findall(cells[column])
            }
    return tables


def test_the_readme_tables_list_every_kind_and_parameter_with_its_default() -> None:
    readme, listed = readme_kinds(), listed_kinds()
    assert set(readme) == set(listed)
    for group in listed:
        assert readme[group] == listed[group], group


def test_every_parameter_is_described() -> None:
    for group in kinds.groups().values():
        for kind in [group.common, *group.kinds]:
            assert kind is None or (kind.description and all(p.description for p in kind.parameters)), kind


def test_cascade_kinds_lists_every_kind_with_its_parameters(monkeypatch) -> None:
    monkeypatch.setattr(cli.console, "width", 200)  # a row per parameter, unwrapped
    result = CliRunner().invoke(app, ["kinds"])
    assert result.exit_code == 0, result.output
    for group in listed_kinds().values():
        for kind, parameters in group.items():
            assert kind in result.output
            assert all(parameter in result.output for parameter in parameters)
    assert re.search(r"│ k +│ integer +│ at least 2 +│ 4 +│ neighbours per node, even", result.output)
    assert re.search(r"│ fraction +│ number \| none +│ in \(0, 1\] +│ none +│", result.output)
    assert "[[attack]] tables" in result.output and "edge weights (topology.weights)" in result.output


def test_cascade_kinds_can_show_one_group() -> None:
    result = CliRunner().invoke(app, ["kinds", "defenses"])
    assert result.exit_code == 0 and "quarantine" in result.output
    assert "narrow_finetune" not in result.output and "watts_strogatz" not in result.output
    refused = CliRunner().invoke(app, ["kinds", "models"])
    assert refused.exit_code == 2


def test_cascade_kinds_imports_neither_torch_nor_ray() -> None:
    check = (
        "import sys; from typer.testing import CliRunner; from ecosystem.cli import app; "
        "assert CliRunner().invoke(app, ['kinds']).exit_code == 0; "
        "print(sorted({'torch', 'ray', 'transformers'} & set(sys.modules)))"
    )
    imported = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
