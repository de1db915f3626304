"""What attacks and defenses share: a kind is one pydantic class, told apart in a config by its `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Tag


class PoisoningKind(BaseModel):
    """An attack or a defense: its parameters (validated from the config) and its behaviour (hooks)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN or infinity is never a setting

    @classmethod
    def kind_name(cls) -> str:
        return get_args(cls.model_fields["kind"].annotation)[0]  # kind: Literal["name"]

    def world_error(self, world_kind: str) -> str | None:
        """Why this kind cannot run in a world of `world_kind`, as `key: problem` (None: it can)."""
        return None


def _tag(value: Any, fallback: str | None) -> str | None:
    """The kind a config table (or a built instance) names; None for anything else, which pydantic refuses."""
    if isinstance(value, dict):
        return value.get("kind", fallback)
    return value.kind_name() if isinstance(value, PoisoningKind) else None


def kinds_union(kinds: tuple[type[PoisoningKind], ...], default: type[PoisoningKind] | None) -> Any:
    """The config type of a table that may be any of `kinds`, chosen by its `kind` key (`default`'s
    when the table has none)."""
    names = [kind.kind_name() for kind in kinds]
    fallback = default.kind_name() if default else None
    variants = tuple(Annotated[kind, Tag(name)] for kind, name in zip(kinds, names, strict=True))
    return Annotated[
        Union[variants],  # noqa: UP007 (a union built from a tuple)
        Discriminator(
            lambda value: _tag(value, fallback),
            custom_error_type="unknown_kind",
            custom_error_message=f"unknown or missing kind; valid kinds: {', '.join(names)}",
        ),
    ]
