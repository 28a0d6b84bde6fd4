"""Published vLLM deployments against the planner's sizing.

    python -m bench.reference_deployments [--reference bench/reference/deployments.yaml] [--out bench/results]

For every entry of the reference set (bench/reference/deployments.yaml) this runs the project's public sizing path,
`python -m components size --json` (components.tools.cli.main, in process), on the entry's GPU and node shape with
the entry's max_model_len, quantization flag, KV cache dtype, memory utilization and task, and compares the GPUs
and TP x PP it picks with the published ones:

- match            we pick as many GPUs as the deployment uses (for a recorded failure: more than the failed shape)
- we-need-more     we pick more GPUs, or nothing fits within the CLI's node limit
- we-need-fewer    we pick fewer GPUs (for a recorded failure: a shape no larger than the one that failed)
- not sizeable     the CLI refuses the input (no catalog row or config.json, a quantization or KV dtype it has no
                   choice for, ...); the reason is the CLI's own message
- error            the sizing raised (a traceback is a bug; the exception is recorded)

A setting the CLI has no flag for is not passed and is listed per entry; --max-num-seqs and
--max-num-batched-tokens (issue 14) are passed when the parser has them. Nothing here adjusts inputs to make a case
match: the entry's published values go in as they are. Writes reference_deployments.json and .md to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import subprocess
import sys
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.catalog import CATALOG_DIR, load_gpu_catalog, load_model_catalog
from components.tools import cli

BENCH_DIR = Path(__file__).parent
REFERENCE = BENCH_DIR / "reference" / "deployments.yaml"
RESULTS = BENCH_DIR / "results"
# Real HF config.json files, <org>/<name>/config.json, for models without a usable catalog row: the reference set's
# own (provenance in its SOURCES.txt), the test fixtures', and the catalog's.
CONFIG_DIRS = (
    BENCH_DIR / "reference" / "configs",
    BENCH_DIR.parent / "tests" / "catalog" / "configs",
    CATALOG_DIR / "configs",
)
COMMAND = "python -m bench.reference_deployments"

MATCH, MORE, FEWER, NOT_SIZEABLE, ERROR = "match", "we-need-more", "we-need-fewer", "not sizeable", "error"
VERDICTS = (MATCH, MORE, FEWER, NOT_SIZEABLE, ERROR)
# The markdown table keeps reasons short; the JSON has them whole.
REASON_CHARS = 200
# Entry settings that map to a `size` flag only when the parser has it (issue 14 adds them).
OPTIONAL_FLAGS = {"max_num_seqs": "--max-num-seqs", "max_num_batched_tokens": "--max-num-batched-tokens"}


@dataclass
class Outcome:
    """One entry's comparison: the inputs given to `size`, what it answered, and the verdict."""

    id: str
    model: str
    gpu: str
    categories: list[str]
    published_outcome: str  # runs | fails
    published_gpus: int
    published_tp: int
    published_pp: int
    published_dp: int
    argv: list[str]
    not_passed: list[str] = field(default_factory=list)
    verdict: str = ERROR
    reason: str = ""
    our_gpus: int | None = None
    our_tp: int | None = None
    our_pp: int | None = None
    same_shape: bool | None = None
    memory: dict[str, Any] | None = None
    kv_cache_tokens: int | None = None
    warnings: list[str] = field(default_factory=list)


def load_reference(path: Path = REFERENCE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise ValueError(f"{path}: expected a mapping with a 'deployments' list")
    return data


def size_flags() -> dict[str, list[str] | None]:
    """The options of `size` as the CLI parser defines them today: flag -> its choices (None when free-form)."""
    parser = cli.build_parser()
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            size = action.choices["size"]
            return {
                flag: [str(c) for c in a.choices] if a.choices is not None else None
                for a in size._actions
                for flag in a.option_strings
            }
    raise RuntimeError("the CLI has no `size` command")


def shipped_config(model: str) -> Path | None:
    """The model's real config.json shipped in the project (CONFIG_DIRS, first found), or None."""
    for folder in CONFIG_DIRS:
        path = folder / model / "config.json"
        if path.is_file():
            return path
    return None


def _num(value: float) -> str:
    return f"{value:g}"


def size_argv(
    entry: dict[str, Any], outside: dict[str, dict[str, Any]], flags: dict[str, list[str] | None]
) -> tuple[list[str], list[str], str | None]:
    """The `size` argv for one entry, the settings left out (no such flag), and a refusal made before sizing
    (a value the CLI has no choice for) or None."""
    argv = ["size", "--json", "--objective", "throughput"]
    not_passed: list[str] = []
    model = str(entry["model"])
    shipped = shipped_config(model)
    if model not in load_model_catalog() and shipped is not None:
        argv += ["--model", model, "--config", str(shipped)]
    else:
        argv += ["--model", model]  # the CLI answers for catalog rows, refused rows and unknown ids alike

    gpu = str(entry["gpu"])
    per_node = int(entry.get("gpus_per_node") or entry["gpus_used"])
    if gpu in load_gpu_catalog():
        argv += ["--gpu", gpu, "--gpus-per-node", str(per_node)]
    else:
        spec = outside[gpu]
        gib = spec["memory_mib"] / 1024 if spec.get("memory_mib") else float(spec["memory_gib"])
        domain = min(int(spec.get("interconnect_domain") or 1), per_node)
        while per_node % domain:
            domain -= 1
        argv += ["--gpu-memory-gib", f"{gib:.2f}", "--gpus-per-node", str(per_node), "--nvlink-domain", str(domain)]
        if not spec.get("peer_to_peer", True):
            argv.append("--no-p2p")

    if entry.get("max_model_len"):
        argv += ["--max-model-len", str(entry["max_model_len"])]
    if entry.get("gpu_memory_utilization"):
        argv += ["--gpu-memory-utilization", _num(float(entry["gpu_memory_utilization"]))]
    task = entry.get("task")
    if task and "--task" in flags:
        argv += ["--task", str(task)]

    for key, flag in (("kv_cache_dtype", "--kv-cache-dtype"), ("quantization", "--quantization")):
        value = entry.get(key)
        if key == "quantization":
            value = (value or {}).get("flag")
        if value in (None, "auto"):
            continue
        choices = flags.get(flag)
        if choices is not None and str(value) not in choices:
            return argv, not_passed, f"{flag} {value} is not a choice of `size` ({', '.join(choices)})"
        argv += [flag, str(value)]

    for key, flag in OPTIONAL_FLAGS.items():
        if entry.get(key) is None:
            continue
        if flag in flags:
            argv += [flag, str(entry[key])]
        else:
            not_passed.append(f"{key}={entry[key]} (`size` has no {flag})")
    return argv, not_passed, None


def run_size(argv: list[str]) -> tuple[int, str, str]:
    """`python -m components size ...` in process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def _last_error(stderr: str) -> str:
    lines = [line.removeprefix("error: ").strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("usage:")]
    return " ".join(errors) or "refused without a message"


def compare(entry: dict[str, Any], outside: dict[str, dict[str, Any]], flags: dict[str, list[str] | None]) -> Outcome:
    parallel = entry.get("parallel") or {}
    outcome = Outcome(
        id=str(entry["id"]),
        model=str(entry["model"]),
        gpu=str(entry["gpu"]),
        categories=[str(c) for c in entry.get("categories") or []],
        published_outcome=str(entry.get("outcome", "runs")),
        published_gpus=int(entry["gpus_used"]),
        published_tp=int(parallel.get("tp", 1)),
        published_pp=int(parallel.get("pp", 1)),
        published_dp=int(parallel.get("dp", 1)),
        argv=[],
    )
    try:
        argv, outcome.not_passed, refusal = size_argv(entry, outside, flags)
        outcome.argv = argv
        if refusal:
            outcome.verdict, outcome.reason = NOT_SIZEABLE, refusal
            return outcome
        code, stdout, stderr = run_size(argv)
    except Exception as exc:  # a traceback from the sizing path is a finding, recorded, not a crash of the bench
        outcome.verdict = ERROR
        outcome.reason = f"{type(exc).__name__}: {exc}".strip()
        outcome.warnings = traceback.format_exc().splitlines()[-3:]
        return outcome
    if code == 1:
        outcome.verdict, outcome.reason = NOT_SIZEABLE, _last_error(stderr)
        return outcome
    if code not in (0, 2):
        outcome.verdict, outcome.reason = ERROR, f"exit {code}: {_last_error(stderr)}"
        return outcome
    sizing = json.loads(stdout)
    outcome.our_tp, outcome.our_pp = int(sizing["tp"]), int(sizing["pp"])
    outcome.our_gpus = int(sizing["gpus_per_replica"])
    outcome.memory = sizing.get("memory")
    outcome.kv_cache_tokens = sizing.get("kv_cache_tokens")
    outcome.warnings = [str(w) for w in sizing.get("warnings") or []]
    fails = outcome.published_outcome == "fails"
    if code == 2:  # nothing fits within the CLI's node limit
        outcome.our_gpus = outcome.our_tp = outcome.our_pp = None
        outcome.verdict = MATCH if fails else MORE
        outcome.reason = _last_error(stderr).removeprefix("does not fit: ")
        return outcome
    outcome.same_shape = (outcome.our_tp, outcome.our_pp) == (outcome.published_tp, outcome.published_pp)
    ours, theirs = outcome.our_gpus, outcome.published_gpus
    if fails:
        outcome.verdict = MATCH if ours > theirs else FEWER
    else:
        outcome.verdict = MATCH if ours == theirs else (MORE if ours > theirs else FEWER)
    reasons = [str(r) for r in sizing.get("reasons") or []]
    outcome.reason = "; ".join(reasons[1:3] if len(reasons) > 1 else reasons)
    return outcome


def run(reference: Path = REFERENCE) -> tuple[dict[str, Any], list[Outcome]]:
    data = load_reference(reference)
    outside = {str(g["key"]): g for g in data.get("gpus_outside_catalog") or []}
    flags = size_flags()
    outcomes = [compare(entry, outside, flags) for entry in data["deployments"]]
    return data, outcomes


def _git_revision() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def refusal_group(reason: str) -> str:
    """What kind of input the CLI refused, so the summary can count them (the entry keeps the full message)."""
    if "is not in the model catalog" in reason:
        return "no catalog row and no shipped config.json"
    if "refused by components/catalog/models.yaml" in reason:
        return "catalog row refused: its config.json is not shipped"
    return reason.split("; ")[0]


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = Counter(o.verdict for o in outcomes)
    sized = [o for o in outcomes if o.verdict in (MATCH, MORE, FEWER)]
    by_category: dict[str, Counter[str]] = {}
    for o in outcomes:
        for category in o.categories:
            by_category.setdefault(category, Counter())[o.verdict] += 1
    return {
        "entries": len(outcomes),
        "verdicts": {v: counts.get(v, 0) for v in VERDICTS},
        "sized": len(sized),
        "same_tp_pp_when_match": sum(1 for o in sized if o.verdict == MATCH and o.same_shape),
        "by_category": {c: dict(sorted(n.items())) for c, n in sorted(by_category.items())},
        "not_sizeable_by_reason": dict(
            Counter(refusal_group(o.reason) for o in outcomes if o.verdict == NOT_SIZEABLE).most_common()
        ),
    }


def _shape(tp: int | None, pp: int | None, gpus: int | None, dp: int = 1) -> str:
    if gpus is None:
        return "-"
    return f"{gpus} ({tp}x{pp}{f', dp {dp}' if dp > 1 else ''})"


def _cell(text: str, limit: int = 0) -> str:
    """A table cell: one line, pipes escaped; with `limit`, the first clause of a long message (the JSON keeps all)."""
    text = text.replace("\n", " ")
    if limit and len(text) > limit:
        text = text.split("; ")[0]
        text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def markdown(meta: dict[str, Any], outcomes: list[Outcome]) -> str:
    s = meta["summary"]
    lines = [
        "# Published vLLM deployments vs our sizing",
        "",
        f"Command: `{meta['command']}`  ",
        f"Run: {meta['run_at']} (project revision {meta['revision']}, Python {meta['python']})  ",
        f"Reference set: `{meta['reference']}` ({s['entries']} entries, read on {meta['read_on']})",
        "",
        "Each entry is sized with `python -m components size --json --objective throughput` on the entry's GPU and node"
        " shape with its max_model_len, --quantization flag, KV cache dtype, memory utilization and task. GPUs are per"
        " replica, written `GPUs (TP x PP)`. For a recorded failure (`fails`), `match` means we also reject the shape"
        " that failed. Settings the CLI has no flag for are listed under *not passed*.",
        "",
        "## Summary",
        "",
        "| verdict | entries |",
        "|---|---|",
        *(f"| {v} | {n} |" for v, n in s["verdicts"].items()),
        "",
        f"Sized: {s['sized']} of {s['entries']}; of the matches, {s['same_tp_pp_when_match']} also have the published"
        " TP x PP.",
        "",
        "| not sizeable because | entries |",
        "|---|---|",
        *(f"| {_cell(r)} | {n} |" for r, n in s["not_sizeable_by_reason"].items()),
        "",
        "| category | " + " | ".join(VERDICTS) + " |",
        "|---|" + "---|" * len(VERDICTS),
        *(f"| {c} | " + " | ".join(str(n.get(v, 0)) for v in VERDICTS) + " |" for c, n in s["by_category"].items()),
        "",
        "## Entries",
        "",
        "| entry | model | GPU | published | ours | verdict | reason | not passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        published = _shape(o.published_tp, o.published_pp, o.published_gpus, o.published_dp)
        if o.published_outcome == "fails":
            published += " fails"
        lines.append(
            f"| {o.id} | {o.model} | {o.gpu} | {published} | {_shape(o.our_tp, o.our_pp, o.our_gpus)} | {o.verdict} "
            f"| {_cell(o.reason, REASON_CHARS)} | {_cell('; '.join(o.not_passed))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="the reference set (YAML)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the .json and .md results")
    args = parser.parse_args(argv)
    data, outcomes = run(args.reference)
    reference = args.reference.resolve()
    root = BENCH_DIR.parent.resolve()
    totals = summary(outcomes)
    meta: dict[str, Any] = {
        "command": COMMAND,
        "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": _git_revision(),
        "python": sys.version.split()[0],
        "reference": str(reference.relative_to(root)) if reference.is_relative_to(root) else str(reference),
        "read_on": data.get("read_on"),
        "summary": totals,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reference_deployments.json").write_text(
        json.dumps({**meta, "entries": [asdict(o) for o in outcomes]}, indent=2, ensure_ascii=False) + "\n"
    )
    (args.out / "reference_deployments.md").write_text(markdown(meta, outcomes))
    verdicts = ", ".join(f"{v} {n}" for v, n in totals["verdicts"].items())
    print(f"{len(outcomes)} entries: {verdicts}; wrote {args.out}/reference_deployments.{{json,md}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
