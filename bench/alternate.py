"""Compare a benchmark on this tree and on another revision, the runs alternated.

The machine's speed drifts from minute to minute, so two figures measured one after the other tell
little; alternating the runs (base, this tree, this tree, base...) spreads the drift over both. The
revision is checked out into a temporary git worktree and run with this tree's virtualenv, its own
source first on the path; each run is a benchmark script of ``bench/`` given ``--no-docs``, and
prints JSON whose numeric fields are compared.

    python bench/alternate.py --base HEAD~5 --runs 3 -- bench/apply.py --batches 600 --customers repeat

Prints each run's figures and, per field, the median of each side and their ratio (this tree / base).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Installed by ``make`` and ignored by git: Swagger UI, and Prism for ``bench/push.py``.
INSTALLED = ("src/patron/static/vendor/node_modules", "bench/.node")


def run(tree: Path, command: list[str]) -> dict[str, Any]:
    """One run of ``command`` (a script of ``bench/`` and its arguments) on ``tree``'s source."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run(
        [sys.executable, str(tree / command[0]), *command[1:], "--no-docs"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed on {tree}:\n{done.stderr[-3000:]}")
    # the script's JSON is the last thing it prints
    text = done.stdout[done.stdout.index("{") :]
    result: dict[str, Any] = json.loads(text)
    return result


def numbers(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric fields of a result, nested ones named by their path."""
    found: dict[str, float] = {}
    for name, value in result.items():
        if isinstance(value, dict):
            found.update(numbers(value, f"{prefix}{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[prefix + name] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--runs", type=int, default=3, help="runs on each side")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- bench/SCRIPT.py [ARGS]")
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]
    if not command:
        parser.error("give the benchmark to run after --")
    with tempfile.TemporaryDirectory(prefix="patron-base-") as scratch:
        base = Path(scratch) / "base"
        add = ["git", "worktree", "add", "--detach", "-q", str(base), args.base]
        subprocess.run(add, cwd=ROOT, check=True)
        for installed in INSTALLED:  # what make installs and git ignores, shared with the base
            if (ROOT / installed).exists() and not (base / installed).exists():
                (base / installed).parent.mkdir(parents=True, exist_ok=True)  # an older base may lack it
                (base / installed).symlink_to(ROOT / installed)
        try:
            sides: dict[str, list[dict[str, float]]] = {"base": [], "tree": []}
            for n in range(args.runs):
                order = [("base", base), ("tree", ROOT)]
                for side, tree in order if n % 2 == 0 else order[::-1]:  # neither side always second
                    figures = numbers(run(tree, command))
                    sides[side].append(figures)
                    print(json.dumps({"run": n + 1, "side": side, **figures}), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    fields = sorted(set(sides["base"][0]) & set(sides["tree"][0]))
    summary = {}
    for name in fields:
        before = statistics.median(r[name] for r in sides["base"])
        after = statistics.median(r[name] for r in sides["tree"])
        summary[name] = {"base": before, "tree": after, "ratio": round(after / before, 3) if before else None}
    report = {"base": args.base, "runs": args.runs, "command": command, "medians": summary}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
