"""Latency the answer gates add to a non-streaming request: the real gate code on 2 kB answers.

The gateway runs ``AnswerGates.check_body`` on each upstream answer before relaying it; that call
(parse the body, run every enabled gate) is all that gating adds to a non-streaming request that
passes. This times it per answer kind (plain text, JSON mode with a schema, a tool call), with the
structural gates of ``examples/gateway.yaml`` plus the refusal gate with two patterns, against a
baseline in the same run: ``json.loads`` of the same body (the least any gate must do).

    python benchmarks/gate_latency.py [--calls 5000] [--answer-bytes 2048] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.gateway.gates import STRUCTURAL_GATES, build_gates

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["billing", "bug", "other"]},
        "summary": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "summary", "confidence"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "create_ticket",
        "parameters": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
            "required": ["title", "body"],
        },
    },
}


def completion(message: dict[str, Any], finish: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 500, "total_tokens": 550},
        }
    ).encode()


def workloads(answer_bytes: int) -> dict[str, tuple[dict[str, Any], bytes]]:
    """(request, upstream body) per answer kind, each answer about ``answer_bytes`` long."""
    filler = ("The customer reports a duplicate charge on the March invoice. " * 64)[:answer_bytes]
    messages = [{"role": "user", "content": "Handle this ticket."}]
    plain = completion({"role": "assistant", "content": filler}, "stop")
    structured = json.dumps({"label": "billing", "summary": filler, "confidence": 0.9})
    json_body = completion({"role": "assistant", "content": structured}, "stop")
    arguments = json.dumps({"title": "Duplicate charge", "body": filler})
    tool_body = completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "create_ticket", "arguments": arguments},
                }
            ],
        },
        "tool_calls",
    )
    schema_format = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}
    return {
        "text": ({"messages": messages}, plain),
        "json_schema": ({"messages": messages, "response_format": schema_format}, json_body),
        "tool_call": ({"messages": messages, "tools": [TOOL]}, tool_body),
    }


def time_calls(function: Any, calls: int) -> np.ndarray:
    samples = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        function()
        samples[i] = time.perf_counter_ns() - start
    return samples / 1e3  # microseconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per workload")
    parser.add_argument("--answer-bytes", type=int, default=2048, help="answer text size")
    parser.add_argument("--out", help="write the results JSON here too")
    args = parser.parse_args(argv)
    gates = build_gates([*STRUCTURAL_GATES, "refusal"], [r"^I'm sorry\b", r"^I can(no|')t help"])
    results: dict[str, Any] = {"calls": args.calls, "answer_bytes": args.answer_bytes}
    for name, (request, body) in workloads(args.answer_bytes).items():
        verdict = gates.check_body(request, body)
        if not verdict.passed:
            raise SystemExit(f"{name}: the benchmark answer fails {verdict}")
        for _ in range(200):  # warm up: schema validators are built once and cached
            gates.check_body(request, body)
            json.loads(body)
        gated = time_calls(lambda r=request, b=body: gates.check_body(r, b), args.calls)
        parsed = time_calls(lambda b=body: json.loads(b), args.calls)
        results[name] = {
            "body_bytes": len(body),
            "gates_p50_us": round(float(np.percentile(gated, 50)), 1),
            "gates_p99_us": round(float(np.percentile(gated, 99)), 1),
            "json_loads_p50_us": round(float(np.percentile(parsed, 50)), 1),
            "ratio_p50_vs_json_loads": round(
                float(np.percentile(gated, 50) / np.percentile(parsed, 50)), 2
            ),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
