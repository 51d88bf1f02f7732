"""Helpers of scripts/mutate, run inside its copy of the tree (the current directory).

``only PATH...``: restrict ``[tool.mutmut] only_mutate`` in the copy's pyproject.toml.
``tests ARG...``: replace its ``pytest_add_cli_args_test_selection`` (files, ``-k`` ...).
``write REPORT COMMAND SECONDS``: read mutmut's results and write REPORT (docs/mutation.md):
the date, the command, the score per module, and every surviving mutant with its diff.
"""

from __future__ import annotations

import datetime as dt
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


def write(report: Path, command: str, seconds: str) -> None:
    found = results()
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    lines = [
        "# Mutation testing: the latest run",
        "",
        "Written by `scripts/mutate` (do not edit by hand; the method, the mutations applied by",
        "hand and the explanation of each survivor are in docs/mutation-testing.md).",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}` (mutmut {version('mutmut')}, {int(seconds) // 60} min)",
        f"- modules: {', '.join(config['only_mutate'])}",
        f"- tests: {', '.join(config['pytest_add_cli_args_test_selection'])}",
        "",
        "| module | mutants | killed | timeout | survived | no tests | other | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("**all**", total))
    lines += ["", "Score: mutants caught (killed, timed out or refused by the type checker) over",
              "all mutants; \"no tests\" mutants count as not caught.", "",
              "## Surviving mutants", ""]
    survivors = [n for n, s in sorted(found.items()) if s not in CAUGHT]
    if not survivors:
        lines.append("None.")
    for name in survivors:
        diff = mutmut("show", name).strip()
        lines += [f"### `{name}` ({found[name]})", "", "```diff", diff, "```", ""]
    report.write_text("\n".join(lines).rstrip() + "\n")


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
