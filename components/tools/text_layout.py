"""Text for a terminal: tables that fit a width, wrapped prose, and shell commands that wrap and still paste.

Our own code rather than a table library: the plan's tables are small and fixed, so the width is won by choosing
the columns (see plan_text); what is left is wrapping a cell or a line, without box drawing, colour or a width
taken from the terminal, so piped output and the tests see what the operator sees.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence

# Default width of text output: tables, prose and commands fit it (`--wide` lifts it).
TEXT_WIDTH = 120
_GAP = "  "
_CONTINUATION = " \\"


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width`, broken at spaces only (an id or a number is never split)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _header_words(header: str) -> list[str]:
    """A header breaks at spaces and after a slash: `gpus/replica` can stack as `gpus/` over `replica`."""
    return re.findall(r"[^ /]+/?|/", header)


def _wrap_header(header: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in _header_words(header):
        glue = "" if lines and lines[-1].endswith("/") else " "
        if lines and len(lines[-1]) + len(glue) + len(word) <= width:
            lines[-1] += glue + word
        else:
            lines.append(word)
    return lines or [""]


def _fit(natural: list[int], least: list[int], width: int) -> list[int]:
    """Column widths: narrow the widest column that can still narrow until the row fits (or none can: then the
    row stays wider than `width`, as an id or a number is never split)."""
    widths = list(natural)
    while sum(widths) + len(_GAP) * (len(widths) - 1) > width:
        shrinkable = [i for i, w in enumerate(widths) if w > least[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, width: int | None = None) -> str:
    """A markdown table, or aligned text columns whose cells wrap at spaces to fit `width` (None: never wrap)."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(headers)
    natural = [max(len(c) for c in [h, *col]) for h, col in zip(headers, columns, strict=True)]
    least = [
        max([len(w) for w in _header_words(h)] + [len(w) for c in col for w in c.split()] + [1])
        for h, col in zip(headers, columns, strict=True)
    ]
    # Wrapping a header costs one line, a cell one line per row: narrow headers down to their cells first.
    cells_width = [max([len(c) for c in col] + [least[i]]) for i, col in enumerate(columns)]
    widths = natural if width is None else _fit(_fit(natural, cells_width, width), least, width)
    out: list[str] = []
    for i, row in enumerate([headers, *rows]):
        wrap = _wrap_header if i == 0 else _wrap
        cells = [wrap(c, w) if len(c) > w else [c] for c, w in zip(row, widths, strict=True)]
        for n in range(max(len(c) for c in cells)):
            parts = [(c[n] if n < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
            out.append(_GAP.join(parts).rstrip())
    return "\n".join(out)


def wrap_line(text: str, width: int | None, indent: str = "", hanging: str = "  ") -> list[str]:
    """One line of prose at `indent`, continued at `indent + hanging`; as is when width is None."""
    if width is None:
        return [indent + text]
    return textwrap.wrap(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent + hanging,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]


def shell_words(env: Mapping[str, str], command: Sequence[str]) -> list[str]:
    """`K=V ... command args` as shell words: a value is quoted, never the assignment (the shell must see `K=`)."""
    return [f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(w) for w in command]


def _groups(words: Sequence[str], head: int) -> list[list[str]]:
    """The first `head` words stay together; then each option with its value (`--flag value`) is one group."""
    groups = [list(words[:head])]
    rest = list(words[head:])
    while rest:
        group = [rest.pop(0)]
        if group[0].startswith("-") and rest and not rest[0].startswith("-"):
            group.append(rest.pop(0))
        groups.append(group)
    return groups


def shell_command(words: Sequence[str], width: int | None, head: int = 1, indent: str = "") -> list[str]:
    """Quoted shell words as lines of at most `width` joined by ` \\` continuations, so the block pastes as one
    command. An option stays with its value unless the pair alone is too long; a word is never split, and one too
    long for an indented line (a JSON argument) starts its line at column 0."""
    if width is None:
        return [indent + " ".join(words)]
    room = width - len(_CONTINUATION)
    lines: list[str] = []
    line = ""
    for group in _groups(words, head):
        joined = " ".join(group)
        for part in [joined] if len(indent) + 2 + len(joined) <= room else group:
            if line and len(line) + 1 + len(part) > room:
                lines.append(line + _CONTINUATION)
                line = ("" if len(indent) + 2 + len(part) > width else indent + "  ") + part
            else:
                line = f"{line} {part}" if line else indent + part
    lines.append(line)
    return lines
