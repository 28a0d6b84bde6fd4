"""Terminal text: tables that fit a width, and wrapped shell commands that still mean the same words."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from components.tools.text_layout import shell_command, shell_words, table


def unwrap(lines: list[str]) -> list[str]:
    """What a POSIX shell reads from the pasted block: ` \\` + newline continues the line."""
    return shlex.split("\n".join(lines).replace("\\\n", ""))


def test_a_table_too_wide_wraps_its_cells_at_spaces_and_its_headers_after_a_slash() -> None:
    rows = [["qwen2-5-32b-instruct", "throughput objective takes the fewest GPUs that hold the weights", "4"]]
    text = table(["model", "why", "gpus/replica"], rows, markdown=False, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].split() == ["model", "why", "gpus/"] and lines[1].split() == ["replica"]
    assert lines[2].split()[:2] == ["qwen2-5-32b-instruct", "throughput"]  # an id is never split
    assert len(lines) > 3 and lines[-1].split()[-1] == "weights"


def test_a_table_that_fits_is_not_wrapped_and_markdown_is_never_wrapped() -> None:
    rows = [["a", "b c d"]]
    assert table(["x", "y"], rows, markdown=False, width=120) == "x  y\na  b c d"
    assert table(["x", "y"], rows, markdown=True, width=3) == "| x | y |\n|---|---|\n| a | b c d |"


def test_a_command_keeps_each_option_with_its_value() -> None:
    words = shell_words({"HF_HUB_OFFLINE": "1"}, ["vllm", "serve", "org/model", "--max-model-len", "8192", "--seed"])
    lines = shell_command(words, width=40, head=4)
    assert lines == [
        "HF_HUB_OFFLINE=1 vllm serve org/model \\",
        "  --max-model-len 8192 --seed",
    ]


def test_an_environment_value_is_quoted_but_not_its_assignment() -> None:
    assert shell_words({"A": "two words"}, ["run"]) == ["A='two words'", "run"]


def test_a_word_too_long_for_an_indented_line_starts_at_column_0() -> None:
    value = '{"rope_parameters":{"rope_type":"yarn","factor":4.0}}'
    lines = shell_command(shell_words({}, ["vllm", "serve", "m", "--hf-overrides", value]), width=len(value) + 3)
    assert lines[-1] == shlex.quote(value)
    assert unwrap(lines) == ["vllm", "serve", "m", "--hf-overrides", value]


_WORD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


@given(
    st.lists(st.one_of(_WORD, _WORD.map(lambda w: "--" + w)), min_size=1, max_size=30),
    st.integers(min_value=20, max_value=140),
    st.sampled_from(["", "  "]),
)
def test_a_wrapped_command_is_the_same_words_within_the_width(words: list[str], width: int, indent: str) -> None:
    lines = shell_command(shell_words({}, words), width, indent=indent)
    assert unwrap(lines) == words
    longest = max(len(shlex.quote(w)) for w in words)
    assert all(len(line) <= max(width, longest + len(indent) + 4) for line in lines)
    assert all(line.endswith(" \\") for line in lines[:-1])
