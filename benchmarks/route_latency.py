"""Route-latency benchmark: ``router-ml bench`` as a script, for runs outside the CLI.

Times ``route()`` per request (one core, warm; p50/p99) and ``route_batch`` throughput for
router-ml, the baselines and LiteLLM's complexity router on the real request shapes in
``../shared/data/requests`` and generated 1k/10k/100k-character prompts. Same code path as the
CLI; see ``python benchmarks/route_latency.py --help``.

    python benchmarks/route_latency.py --report reports/bench
"""

from __future__ import annotations

import sys

from router_ml.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
