"""What `cascade kinds` lists: every attack, defense and topology family with its parameters (type,
range, default, description), read from their pydantic fields. Needs neither torch nor Ray."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

import topologies
from poisoning import ATTACKS, DEFENSES, AttackBase, DefenseBase
from topologies.families import bounds

GroupName = Literal["attacks", "defenses", "topologies"]
TYPE_WORDS = {int: "integer", float: "number", bool: "boolean", str: "string", type(None): "none"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    range: str  # in words ('' when any value of the type is allowed)
    default: str  # as a config file writes it; "none" for no value, "required" where there is no default
    description: str


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    parameters: list[Parameter]


@dataclass(frozen=True)
class Group:
    where: str  # where a config chooses a kind and sets its parameters
    common: Kind | None  # the parameters that every kind of the group takes
    kinds: list[Kind]  # each with the parameters of its own


def groups() -> dict[GroupName, Group]:
    """Attacks, defenses and topology families, each kind with its parameters."""
    return {
        "attacks": Group(
            "[[attack]] tables, chosen by `kind`",
            _kind("every attack", AttackBase),
            [_kind(attack.kind_name(), attack, AttackBase) for attack in ATTACKS],
        ),
        "defenses": Group(
            "[[defense]] tables, chosen by `kind`",
            _kind("every defense", DefenseBase),
            [_kind(defense.kind_name(), defense, DefenseBase) for defense in DEFENSES],
        ),
        "topologies": Group(
            "topology.name; the parameters in topology.params, but nodes as topology.nodes",
            None,
            [_kind(name, family, note=f"; edges: {family.edges}") for name, family in topologies.FAMILIES.items()],
        ),
    }


def _kind(name: str, model: type[BaseModel], base: type[BaseModel] | None = None, note: str = "") -> Kind:
    """A kind described by its class's docstring and `note`, with the parameters of `model` that `base`
    does not have alike (all of them without `base`)."""
    inherited = parameters(base) if base else []
    own = [parameter for parameter in parameters(model) if parameter not in inherited]
    default = "kind" in model.model_fields and not model.model_fields["kind"].is_required()
    description = " ".join((model.__doc__ or "").split()) + note + (" (the default kind)" if default else "")
    return Kind(name, description, own)


def parameters(model: type[BaseModel]) -> list[Parameter]:
    """The fields of `model`, but its `kind`, as parameters."""
    return [
        Parameter(name, _type_words(field.annotation), bounds(field), _default(field), field.description or "")
        for name, field in model.model_fields.items()
        if name != "kind"
    ]


def _type_words(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_words(member) for member in get_args(annotation))
    if origin is list:
        return f"list of {_type_words(get_args(annotation)[0])}s"
    return TYPE_WORDS[annotation]


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "none" if value is None else json.dumps(value)
