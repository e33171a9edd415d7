"""The sense suite: hand-written requests whose tier class the product's task tables settle.

Each line of a suite file (``examples/sense.jsonl``) is ``{"id", "kind", "expected", "request"}``
with ``expected`` one of ``economy`` (classification, routine lookups, short transformations,
background summarization, context compression, drafts), ``standard`` (data extraction),
``premium`` (code generation, creative writing, hard reasoning, long chains of logic, costly if
wrong) or ``capable`` (error recovery: any tier above economy). A request expected at economy is
*easy*, every other one *hard*; the suite reports the share of hard requests routed above economy
and of easy ones routed to economy, the two numbers the product's sense check is judged by.

It checks sense, not accuracy: 40-odd requests cannot measure a router, but a router that sends
an olympiad proof or a failed tool call to the cheapest tier is wrong whatever its pooled score.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_ml.router import Router
from router_ml.tiers import TIERS, tier_rank

EXPECTED = ("economy", "standard", "premium", "capable")


@dataclass(frozen=True)
class SuiteItem:
    id: str
    kind: str
    expected: str
    request: dict[str, Any]

    @property
    def hard(self) -> bool:
        return self.expected != TIERS[0]


@dataclass(frozen=True)
class SuiteOutcome:
    item: SuiteItem
    tier: str
    ood: float | None
    reason: str

    @property
    def passed(self) -> bool:
        """Hard: routed above economy; easy: routed to economy."""
        return (self.tier != TIERS[0]) if self.item.hard else (self.tier == TIERS[0])

    @property
    def reached_expected(self) -> bool:
        """The tier is at least the expected one (``capable``: above economy)."""
        if self.item.expected == "capable":
            return self.tier != TIERS[0]
        return tier_rank(self.tier) >= tier_rank(self.item.expected)


def load_suite(path: str | os.PathLike[str]) -> list[SuiteItem]:
    """Read a suite file; a bad line raises ``ValueError`` naming its line number."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = SuiteItem(
                str(raw["id"]), str(raw["kind"]), str(raw["expected"]), dict(raw["request"])
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a suite item: {exc}") from None
        if item.expected not in EXPECTED:
            raise ValueError(f"{path}:{number}: expected must be one of {', '.join(EXPECTED)}")
        items.append(item)
    if not items:
        raise ValueError(f"{path}: no suite items")
    return items


def run_suite(router: Router, items: Sequence[SuiteItem]) -> list[SuiteOutcome]:
    """Route every item with ``router`` (its policy, operating point and coverage rule)."""
    outcomes = []
    for item in items:
        decision = router.route(item.request)
        outcomes.append(SuiteOutcome(item, decision.tier, decision.ood, decision.reason))
    return outcomes


def summarize(outcomes: Sequence[SuiteOutcome]) -> dict[str, Any]:
    """Hard-above-economy and easy-at-economy shares, per kind, and every item."""
    hard = [o for o in outcomes if o.item.hard]
    easy = [o for o in outcomes if not o.item.hard]
    kinds: dict[str, list[SuiteOutcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.item.kind, []).append(outcome)
    return {
        "n": len(outcomes),
        "hard_above_economy": _share(hard),
        "easy_at_economy": _share(easy),
        "n_hard": len(hard),
        "n_easy": len(easy),
        "reached_expected_tier": sum(o.reached_expected for o in outcomes) / len(outcomes),
        "per_kind": {
            kind: {"n": len(group), "passed": _share(group), "expected": group[0].item.expected}
            for kind, group in kinds.items()
        },
        "items": [
            {
                "id": o.item.id,
                "kind": o.item.kind,
                "expected": o.item.expected,
                "tier": o.tier,
                "passed": o.passed,
                "ood": None if o.ood is None else round(o.ood, 3),
                "reason": o.reason,
            }
            for o in outcomes
        ],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A readable report: the two headline shares, per kind, then every item."""
    lines = [
        f"sense suite: {summary['n']} requests",
        f"  hard above economy: {summary['hard_above_economy']:.0%} of {summary['n_hard']}",
        f"  easy at economy:    {summary['easy_at_economy']:.0%} of {summary['n_easy']}",
        f"  at or above the expected tier: {summary['reached_expected_tier']:.0%}",
        "",
        f"{'kind':<28} {'expected':<9} {'n':>3} {'passed':>7}",
    ]
    for kind, row in summary["per_kind"].items():
        lines.append(f"{kind:<28} {row['expected']:<9} {row['n']:>3} {row['passed']:>7.0%}")
    lines += ["", f"{'':2}{'id':<28} {'expected':<9} {'tier':<9} {'ood':>5}  reason"]
    for item in summary["items"]:
        mark = "ok" if item["passed"] else "XX"
        ood = "-" if item["ood"] is None else f"{item['ood']:.2f}"
        lines.append(
            f"{mark:<2}{item['id']:<28} {item['expected']:<9} {item['tier']:<9} {ood:>5}  "
            f"{item['reason']}"
        )
    return "\n".join(lines)


def _share(group: Sequence[SuiteOutcome]) -> float:
    return sum(o.passed for o in group) / len(group) if group else float("nan")
