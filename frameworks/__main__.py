"""``python -m frameworks [--write]``: run every framework and print docs/framework-findings.md (or write it).

Each framework runs in its own process (``python -m frameworks.script MODULE``): Django's settings
are configured once a process, and one framework's imports never reach another's run.

Exit status: 0 when every framework ran; 1 when one is not installed or its run failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys

from frameworks.doc import COMMAND, DOC_PATH, EXTRA, FRAMEWORKS, ROOT, render

RUN_TIMEOUT_S = 120


def run_one(module: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "frameworks.script", module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{module}: the run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    results: dict[str, object] = json.loads(done.stdout)
    return results


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help=f"write {DOC_PATH.relative_to(ROOT)} (the doc says `{COMMAND}`)"
    )
    args = parser.parse_args(argv)
    missing = [f.distribution for f in FRAMEWORKS if not installed(f.distribution)]
    if missing:
        print(f"not installed: {', '.join(missing)}; pip install -e '.[{EXTRA},test]'", file=sys.stderr)
        return 1
    text = render([run_one(f.module) for f in FRAMEWORKS])
    if args.write:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH.relative_to(ROOT)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
