"""Fuzz: mutated stack configs and config.json files end in a plan or in one of the project's own errors.

Each example takes a shipped stack config (or a shipped config.json), deletes keys, swaps values for values of
other types (None, bool, int, float with nan/inf, str with odd characters, list, dict) or for edge values of
their own type, and runs it through the public path: `load_cluster_spec` + `plan_for`. Any exception other than
SpecError (SizingError is one), CatalogError or StackFileError fails the test, and so does an error line that
names no field. Derandomized and database-less, so CI runs the same examples every time.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.catalog import CATALOG_DIR
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from testbed.bad_input import PROJECT_ERRORS, assert_names_a_field, one_model_stack
from testbed.stacks import STACKS, stack_config

EXAMPLES = 1000
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONFIGS = sorted(p for p in (CATALOG_DIR / "configs").rglob("config.json") if "1_Pooling" not in p.parts)

TreePath = tuple[str | int, ...]

ODD_STRINGS = ["", " ", "\n", "llm\n", "-", "x" * 300, "ÄÖ-модель", "../../etc/passwd", "a\x00b", "0", "1e400",
               "NaN", "-1Gi", "0Gi", "Infinity", "true", "thirty-two", "a b", "UPPER", "kube-system"]  # fmt: skip
EDGE_INTS = [0, -1, 1, 2**31, 2**63, 10**40]
EDGE_FLOATS = [0.0, -0.0, -1.5, 0.5, 1e-300, 1e300, math.nan, math.inf, -math.inf]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(EDGE_FLOATS),
    st.floats(),
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
odd_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)


def paths(node: Any, prefix: TreePath = ()) -> Iterator[TreePath]:
    """Every place in a tree of dicts and lists, parents before children."""
    items: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def _parent(tree: Any, path: TreePath) -> Any:
    for part in path[:-1]:
        tree = tree[part]
    return tree


def tweaked(value: Any, data: st.DataObject) -> Any:
    """An edge value of the same type: what a careless edit (not a type error) produces."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return data.draw(st.sampled_from([*EDGE_INTS, -value, value * 1000]))
    if isinstance(value, float):
        return data.draw(st.sampled_from([*EDGE_FLOATS, -value, value * 1000]))
    if isinstance(value, str):
        return data.draw(st.sampled_from([*ODD_STRINGS, value + "\n", value.upper(), value * 20, f" {value}"]))
    if isinstance(value, list):
        return data.draw(st.sampled_from([[], value + value, value[:1]]))
    return {}


def mutate(tree: Any, data: st.DataObject) -> None:
    """Delete, replace, tweak or add one thing somewhere in `tree`, in place."""
    places = list(paths(tree))
    if not places:
        return
    path = data.draw(st.sampled_from(places))
    parent, key = _parent(tree, path), path[-1]
    action = data.draw(st.sampled_from(["delete", "replace", "tweak", "add"]))
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = data.draw(odd_values)
    elif action == "tweak":
        parent[key] = tweaked(parent[key], data)
    elif isinstance(parent, dict):
        parent[data.draw(st.sampled_from(["x", "Name", "name ", "kind"]))] = data.draw(odd_values)
    else:
        parent.append(data.draw(odd_values))


def plan_or_refuse(raw: Any) -> None:
    """A plan with every model placed, or a refusal whose every line names its field."""
    try:
        spec = load_cluster_spec(raw)
        plan = plan_for(spec)
    except PROJECT_ERRORS as exc:
        assert_names_a_field(exc)
        return
    assert [m.name for m in plan.models] == [m.name for m in spec.models]
    assert all(m.gpus_per_replica >= 1 and m.max_model_len >= 1 for m in plan.models)


@FUZZ
@given(data=st.data())
def test_mutated_stack_configs_plan_or_are_refused(data: st.DataObject) -> None:
    raw = copy.deepcopy(stack_config(data.draw(st.sampled_from(STACKS))))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        mutate(raw, data)
    plan_or_refuse(raw)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config") / "config.json"


@FUZZ
@given(data=st.data())
def test_mutated_hf_configs_size_or_are_refused(config_file: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(CONFIGS))
    cfg = json.loads(source.read_text())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        mutate(cfg, data)
    config_file.write_text(json.dumps(cfg))
    try:
        plan = plan_for(load_cluster_spec(one_model_stack(config_file)))
    except PROJECT_ERRORS as exc:
        assert_names_a_field(exc)
        if isinstance(exc, SpecError) and exc.errors[0].startswith("models[0].configPath:"):
            assert f"{config_file} of acme/outside: " in exc.errors[0], exc.errors[0]  # the file, then the key
        return
    (model,) = plan.models
    assert model.gpus_per_replica >= 1 and model.max_model_len >= 1
