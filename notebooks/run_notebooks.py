"""Execute the notebooks headless with nbclient, top to bottom, failing on the first error.

CI runs them on a small sample (``--sample 300`` sets ``ROUTER_ML_SAMPLE``) into a scratch copy;
the committed notebooks are refreshed with the outputs of a full run with ``--in-place``::

    python notebooks/run_notebooks.py --sample 300          # quick check, notebooks untouched
    python notebooks/run_notebooks.py --in-place            # full run, outputs saved
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01-traffic.ipynb", "02-train.ipynb", "03-benchmark.ipynb", "04-savings.ipynb")


def run_notebook(path: Path, timeout: int, out: Path | None) -> Path:
    """Execute ``path`` in the repository root and write the executed copy to ``out``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR.parent)}})
    client.execute()
    target = out if out is not None else path
    nbformat.write(notebook, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run on N labeled records (sets ROUTER_ML_SAMPLE)")
    parser.add_argument("--in-place", action="store_true",
                        help="save outputs into the notebooks (default: a copy in --out)")
    parser.add_argument("--out", type=Path, default=Path("notebook-runs"), metavar="DIR",
                        help="folder for executed copies when not --in-place")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("notebooks", nargs="*", default=NOTEBOOKS, help="which notebooks")
    args = parser.parse_args(argv)
    if args.sample is not None:
        os.environ["ROUTER_ML_SAMPLE"] = str(args.sample)
    if not args.in_place:
        args.out.mkdir(parents=True, exist_ok=True)
    for name in args.notebooks:
        out = None if args.in_place else args.out / name
        print(f"running {name}", file=sys.stderr)
        print(f"wrote {run_notebook(NOTEBOOKS_DIR / name, args.timeout, out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
