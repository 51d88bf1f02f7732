"""Helpers of scripts/mutate, run inside its copy of the tree (the current directory).

``only PATH...``: restrict ``[tool.mutmut] only_mutate`` in the copy's pyproject.toml.
``tests ARG...``: replace its ``pytest_add_cli_args_test_selection`` (files, ``-k`` ...).
``write REPORT COMMAND SECONDS``: read mutmut's results and update REPORT (docs/mutation.md):
for each module mutated, its section (the date, the command, the tests, the counts and every
surviving mutant with its diff) is replaced; the other modules' sections are kept, and the
table of scores is made from them all.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

CAUGHT = ("killed", "timeout", "caught by type check")


def replace_list(key: str, values: list[str]) -> None:
    """Set the list ``key`` of the copy's ``[tool.mutmut]`` to ``values``."""
    config = Path("pyproject.toml")
    listed = ", ".join(f'"{v}"' for v in values)
    new, n = re.subn(rf"^{key} = \[.*?\]", f"{key} = [{listed}]", config.read_text(),
                     flags=re.S | re.M)
    if n != 1:
        sys.exit(f"mutate: no {key} list in pyproject.toml [tool.mutmut]")
    config.write_text(new)


def mutmut(*args: str) -> str:
    return subprocess.run([".venv/bin/mutmut", *args], capture_output=True, text=True,
                          check=False).stdout


def show(name: str) -> str:
    """A mutant's diff: in this process through mutmut's own function (the pinned 3.8.1),
    which takes a fraction of a second where ``mutmut show`` starts a new interpreter for
    each; the command when that function is not there."""
    try:
        from mutmut.__main__ import find_mutant
        from mutmut.mutation.diff_apply import get_diff_for_mutant
    except ImportError:
        return mutmut("show", name).strip()
    return f"# {name}\n" + get_diff_for_mutant(name, path=find_mutant(name).path).strip()


def results() -> dict[str, str]:
    """{mutant name: status} for every mutant of the last run."""
    found = {}
    for line in mutmut("results", "--all", "true").splitlines():
        name, sep, status = line.strip().partition(": ")
        if sep:
            found[name] = status
    return found


def module_of(mutant: str) -> str:
    return mutant.split(".x_")[0].split(".xǁ")[0]


BLOCK = re.compile(r"<!-- mutate:(?P<module>[\w.]+) (?P<counts>\{.*?\}) -->\n(?P<body>.*?)"
                   r"<!-- /mutate:(?P=module) -->\n", re.S)


def write(report: Path, command: str, seconds: str) -> None:
    """Replace, in REPORT, the sections of the modules this run mutated (each with its date,
    command, tests and survivors) and keep the others: one module can be rerun alone."""
    found = results()
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    kept: dict[str, tuple[Counter[str], str]] = {}
    if report.exists():
        for m in BLOCK.finditer(report.read_text()):
            kept[m["module"]] = (Counter(json.loads(m["counts"])), m["body"])
    when = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    for module, counts in by_module.items():
        body = [f"## {module}", "",
                f"- date: {when}",
                f"- command: `{command}` (mutmut {version('mutmut')}, "
                f"{int(seconds) // 60} min for the run)",
                f"- modules of the run: {', '.join(config['only_mutate'])}",
                f"- tests: {', '.join(config['pytest_add_cli_args_test_selection'])}",
                f"- result: {_summary(counts)}", ""]
        survivors = [n for n, s in sorted(found.items())
                     if module_of(n) == module and s not in CAUGHT]
        if not survivors:
            body += ["No surviving mutant.", ""]
        for name in survivors:
            diff = show(name)
            body += [f"### `{name}` ({found[name]})", "", "```diff", diff, "```", ""]
        kept[module] = (counts, "\n".join(body) + "\n")
    lines = [
        "# Mutation testing: the latest run of each module",
        "",
        "Written by `scripts/mutate` (do not edit by hand; the method, the mutations applied by",
        "hand and the explanation of each survivor are in docs/mutation-testing.md). A run",
        "replaces the sections of the modules it mutated and keeps the others.",
        "",
        "| module | mutants | killed | timeout | survived | no tests | other | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total: Counter[str] = Counter()
    for module in sorted(kept):
        total.update(kept[module][0])
        lines.append(_row(module, kept[module][0]))
    lines.append(_row("**all**", total))
    lines += ["", "Score: mutants caught (killed, timed out or refused by the type checker) over",
              "all mutants; \"no tests\" mutants count as not caught.", ""]
    for module in sorted(kept):
        counts, body = kept[module]
        lines += [f"<!-- mutate:{module} {json.dumps(dict(sorted(counts.items())))} -->",
                  body.rstrip("\n"), f"<!-- /mutate:{module} -->", ""]
    report.write_text("\n".join(lines).rstrip() + "\n")


def _summary(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _row(module: str, counts: Counter[str]) -> str:
    all_ = sum(counts.values())
    caught = sum(counts[s] for s in CAUGHT)
    other = all_ - caught - counts["survived"] - counts["no tests"]
    score = f"{100 * caught / all_:.1f} %" if all_ else "-"
    return (f"| {module} | {all_} | {counts['killed']} | {counts['timeout']} | "
            f"{counts['survived']} | {counts['no tests']} | {other} | {score} |")


if __name__ == "__main__":
    if sys.argv[1] == "only":
        replace_list("only_mutate", sys.argv[2:])
    elif sys.argv[1] == "tests":
        replace_list("pytest_add_cli_args_test_selection", sys.argv[2:])
    elif sys.argv[1] == "write":
        write(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
