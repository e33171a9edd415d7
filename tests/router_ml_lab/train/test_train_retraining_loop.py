"""The retraining loop on one's own traffic, end to end, from a gateway decision log.

A team runs the gateway with prompts logged and answer gates on. Its traffic has a kind the public
data barely has: contract extraction into a JSON schema, which the economy model keeps getting
wrong (the JSON gate fails and the request escalates; or, with gates off, a reviewer scores the
economy answer 0). The loop: decision log + outcomes → ``router-ml export-log`` → ``router-ml
train`` on a sample of the public traffic plus the team's records → the model directory loads →
the request whose economy answer failed now gets a higher risk of needing more than economy than
from the same training without the team's records.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import tiny_config

from router_ml.cli import main
from router_ml.features import FeatureExtractor
from router_ml.gateway.decision_log import DecisionLog
from router_ml.model import TierModel

MODELS = {"economy": "gpt-4o-mini", "standard": "gpt-4o", "premium": "o1"}
CONTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "parties": {"type": "array", "items": {"type": "string"}},
        "effective_date": {"type": "string"},
        "obligations": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["parties", "effective_date", "obligations"],
}
CLAUSES = [
    "The Supplier shall deliver the goods within thirty days of each purchase order.",
    "Either party may terminate this agreement with ninety days written notice.",
    "The Customer shall pay all invoices within forty-five days of receipt.",
    "Liability of either party is limited to the fees paid in the preceding twelve months.",
    "The Supplier warrants that the goods conform to the specifications in Annex B.",
    "Confidential information shall not be disclosed to any third party without consent.",
    "This agreement is governed by the laws of the State of New York.",
    "Disputes shall be settled by arbitration in Geneva under the ICC rules.",
]


def contract_request(index: int, rng: np.random.Generator) -> dict[str, Any]:
    clauses = " ".join(rng.choice(CLAUSES, size=int(rng.integers(12, 30))))
    text = (
        f"Agreement {index} between Company {index} Ltd and Vendor {index * 7} GmbH, effective "
        f"2025-0{1 + index % 9}-1{index % 10}.\n{clauses}"
    )
    return {
        "messages": [
            {
                "role": "system",
                "content": "Extract the parties, effective date and every obligation as JSON.",
            },
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "contract", "schema": CONTRACT_SCHEMA},
        },
    }


def code_review_request(index: int, rng: np.random.Generator) -> dict[str, Any]:
    names = ["total", "items", "cache", "offset", "window", "limit", "buffer", "count"]
    body = "\n".join(
        f"    {a} = {b}[{index % 7}:{c}] + len({a})  # step {k}"
        for k, (a, b, c) in enumerate(rng.choice(names, size=(int(rng.integers(8, 20)), 3)))
    )
    text = (
        f"This function returns wrong totals for some inputs (ticket {index}). Find the bug and "
        f"explain the fix.\n```python\ndef merge_{index}(items, cache):\n{body}\n"
        "    return total\n```"
    )
    return {"messages": [{"role": "user", "content": text}]}


def chat_request(index: int, rng: np.random.Generator) -> dict[str, Any]:
    asks = ["Say hello to", "Thank", "Wish a happy birthday to", "Greet the new colleague"]
    return {"messages": [{"role": "user", "content": f"{rng.choice(asks)} person {index}."}]}


def log_line(request_id: str, request: dict[str, Any], gates: list[tuple[str, bool | None]]):
    """A decision-log line as the gateway writes it (gates helper format, prompts included)."""
    last = gates[-1][0]
    return {
        "id": request_id,
        "endpoint": "/v1/chat/completions",
        "tier": last,
        "model": MODELS[last],
        "upstream": "openai",
        "status": 200,
        "outcome": "ok",
        "request": request,
        "attempts": [
            {
                "tier": tier,
                "model": MODELS[tier],
                "upstream": "openai",
                "status": 200,
                "failure": "gate" if passed is False else None,
                "gate": None
                if passed is None
                else {"name": "json_schema", "passed": passed, "detail": "" if passed else "x"},
            }
            for tier, passed in gates
        ],
    }


def write_gateway_log(directory: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The team's decision log and outcomes; returns them and the reviewed failed request.

    Contract extraction into a JSON schema: the JSON gate failed on economy and standard's answer
    passed (exact label standard), or only economy was tried (censored: needs more than economy).
    Code review: no gate applies to free text; a reviewer scored economy's answers 0, so the only
    evidence about this kind is censored. Short chats: reviewers scored a quarter of them 1 on
    economy and labeled another quarter economy directly.
    """
    rng = np.random.default_rng(7)
    log = DecisionLog(directory / "decisions.jsonl")
    outcomes: list[dict[str, Any]] = []
    escalated = [("economy", False), ("standard", True)]
    for i in range(80):
        log.write(log_line(f"rtr-esc-{i}", contract_request(i, rng), escalated))
    for i in range(20):  # max_retries 0 on this route: only economy was tried, and it failed
        log.write(
            log_line(f"rtr-eco-fail-{i}", contract_request(100 + i, rng), [("economy", False)])
        )
    reviewed = code_review_request(0, rng)
    for i in range(40):
        request = reviewed if i == 0 else code_review_request(i, rng)
        log.write(log_line(f"rtr-review-{i}", request, [("economy", None)]))
        outcomes.append({"id": f"rtr-review-{i}", "score": 0})
    for i in range(120):
        log.write(log_line(f"rtr-chat-{i}", chat_request(i, rng), [("economy", None)]))
        if i % 4 == 0:
            outcomes.append({"id": f"rtr-chat-{i}", "score": 1.0})
        elif i % 4 == 2:
            outcomes.append({"id": f"rtr-chat-{i}", "tier": "economy"})  # a direct label
    log.close()
    lines = [json.dumps(o) for o in outcomes]
    lines.insert(5, "{this line is broken")
    path = directory / "outcomes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return directory / "decisions.jsonl", path, reviewed


def public_sample(shared_data: Path, out: Path, per_source: int = 300) -> Path:
    """Every k-th record of each public source, up to ``per_source`` of each."""
    lines = []
    for path in sorted((shared_data / "traffic").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows = handle.readlines()
        step = max(1, len(rows) // per_source)
        lines += rows[::step][:per_source]
    out.write_text("".join(lines))
    return out


def economy_risk(model_dir: Path, request: dict[str, Any]) -> float:
    features = FeatureExtractor().extract(request)[None, :]
    return float(TierModel.load(model_dir).risks(features)[0, 0])


def test_retraining_on_own_gateway_log_raises_the_risk_of_a_failed_economy_request(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, outcomes, failed = write_gateway_log(tmp_path)
    own = tmp_path / "my-traffic.jsonl"
    export = ["export-log", "--log", str(log), "--outcomes", str(outcomes), "--out", str(own)]
    assert main(export) == 0
    exported = capsys.readouterr()
    assert "wrote 200 traffic records" in exported.out  # 80 + 20 contracts, 40 reviews, 60 chats
    assert f"{outcomes}:6: malformed JSON" in exported.err  # reported and skipped
    records = {r["id"]: r for r in map(json.loads, own.read_text().splitlines())}
    assert records["rtr-review-0"]["tier_outcomes"] == {"economy": 0.0}  # served tier, no catalog
    assert records["rtr-esc-0"]["tier_outcomes"] == {"economy": 0.0, "standard": 1.0}  # gates

    public = public_sample(shared_data, tmp_path / "public.jsonl")
    config = str(tiny_config(tmp_path))
    catalog = str(shared_data / "models.json")
    common = ["--catalog", catalog, "--config", config, "--seed", "0", "--no-progress"]
    assert main(["train", "--data", str(public), "--out", str(tmp_path / "before"), *common]) == 0
    capsys.readouterr()
    after = tmp_path / "after"
    assert main(["train", "--data", str(public), str(own), "--out", str(after), *common]) == 0
    trained = capsys.readouterr()

    metadata = json.loads((after / "metadata.json").read_text())
    censored = metadata["labels"]["censored"]
    assert censored["records"] == 60 and 0 < censored["trained_on"] <= 60
    assert "gateway" in trained.err and "small" in trained.err  # a few hundred own records
    card = (after / "MODEL_CARD.md").read_text()
    assert "95% bootstrap" in card

    before_risk = economy_risk(tmp_path / "before", failed)
    after_risk = economy_risk(after, failed)
    print(
        f"P(needs > economy) of the failed-economy request: {before_risk:.3f} -> {after_risk:.3f}"
    )
    assert after_risk > before_risk + 0.2
    # Old and new model compared on the team's own held-out records (direct tier labels among
    # them): same split settings as training, so neither model trained on these records.
    evaluated = {}
    for name in ("before", "after"):
        report = tmp_path / f"eval-{name}"
        evaluate = ["eval", "--model", str(tmp_path / name), "--data", str(own), "--catalog"]
        assert main([*evaluate, catalog, "--report", str(report), "--baselines"]) == 0
        ours = json.loads((report / "report.json").read_text())["routers"][0]
        evaluated[name] = ours["pooled"]
    capsys.readouterr()
    figures = ("n", "accuracy", "under_routing", "over_routing")
    print({name: {k: round(m[k], 3) for k in figures} for name, m in evaluated.items()})
    before, after_eval = evaluated["before"], evaluated["after"]
    assert before["n"] == after_eval["n"] > 0
    assert after_eval["accuracy"] > before["accuracy"] + 0.2
    assert after_eval["under_routing"] <= before["under_routing"]
    assert after_eval["over_routing"] < before["over_routing"]

    # The lesson generalises to a new request of the kind, while the kind economy answered well
    # stays cheap: the model did not just learn "everything from this gateway needs more".
    unseen = code_review_request(7000, np.random.default_rng(2))
    assert economy_risk(after, unseen) > economy_risk(tmp_path / "before", unseen) + 0.2
    chat = chat_request(5000, np.random.default_rng(1))
    assert economy_risk(after, chat) < 0.5 * after_risk
