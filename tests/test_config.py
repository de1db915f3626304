"""The configuration as a property: whatever values its keys get, it validates to a config that
round-trips through config.toml unchanged, or it is refused with ConfigError, never another error."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecosystem.config import Config, ConfigError, load_config, validate

DEFAULTS = Config().settings()  # every key of the default configuration, dotted, and its value
KEYS = sorted(DEFAULTS)
ANY_VALUE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["all", "random", "top", "ring", "star", "lora", "full", "hf", "vllm", "tiny", "checkpoint"]),
    st.lists(st.integers(min_value=-3, max_value=12), max_size=4),
    st.lists(st.floats(allow_nan=True), min_size=2, max_size=2),
)


def plausible(key: str) -> st.SearchStrategy:
    """A value of the default's type, near the values a user would choose, so that many drawn configs are valid."""
    default = DEFAULTS[key]
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(min_value=0, max_value=2 * default + 3)
    if isinstance(default, float):
        return st.floats(min_value=0, max_value=1)
    return st.just(default)


VALUES = st.lists(st.sampled_from(KEYS), max_size=6, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: st.one_of(plausible(key), plausible(key), ANY_VALUE) for key in keys})
)


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.0.b": 1} → {"a": [{"b": 1}]}: the shape of a config file."""
    data: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        *parents, leaf = parts
        node: Any = data
        for index, part in enumerate(parents):
            if isinstance(node, list):
                while len(node) <= int(part):
                    node.append({})
                node = node[int(part)]
            else:
                node = node.setdefault(part, [] if parts[index + 1].isdigit() else {})
        if isinstance(node, list):
            continue  # a value where the default has a list of tables: not a shape a file can have here
        node[leaf] = value
    return data


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_any_values_validate_and_round_trip_or_are_refused(tmp_path_factory, values) -> None:
    try:
        config = validate(nested(values))
    except ConfigError:
        return
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text(config.to_toml())
    again = load_config(path)
    assert again == config
    assert again.to_toml() == config.to_toml()
