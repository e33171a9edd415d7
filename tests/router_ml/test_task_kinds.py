"""The task table: which kinds raise or cap a decision, and how the risks move to match."""

from __future__ import annotations

import pytest

from router_ml.calibration import choose_tier
from router_ml.task_kinds import DEFAULT_TIERS, TASK_KINDS, TaskTable, TaskVerdict
from router_ml.text_embedding import KIND_HEAD_TOKENS, KIND_TAIL_TOKENS, kind_token_ids

THRESHOLDS = (0.2, 0.3)


def _probabilities(kind: str, p: float, rest: str = "exam_question") -> list[float]:
    """``p`` on ``kind``, the remainder on ``rest`` (an ``auto`` kind by default)."""
    return [p if k == kind else (1.0 - p if k == rest else 0.0) for k in TASK_KINDS]


def test_the_default_table_is_the_products_task_table() -> None:
    assert set(DEFAULT_TIERS) == set(TASK_KINDS)
    assert DEFAULT_TIERS["summarization"] == "economy"
    assert DEFAULT_TIERS["extraction"] == "standard"
    assert DEFAULT_TIERS["creative_writing"] == "premium"
    assert DEFAULT_TIERS["exam_question"] == "auto"


def test_kinds_above_economy_raise_at_a_modest_confidence() -> None:
    table = TaskTable()
    verdict = table.verdict(_probabilities("code_generation", 0.45, "lookup"), False, False)
    assert verdict == TaskVerdict("code_generation", pytest.approx(0.45), "premium", "raise")
    assert table.verdict(_probabilities("code_generation", 0.2, "hard_reasoning"), False, False)
    assert (
        table.verdict(_probabilities("code_generation", 0.2, "exam_question"), False, False) is None
    )
    # Reading mostly as an exam question, the request is the model's to decide.
    assert table.verdict(_probabilities("code_generation", 0.45), False, False) is None
    raised = TaskTable.apply(verdict, [0.01, 0.0], THRESHOLDS)
    assert choose_tier(raised, THRESHOLDS) == 2
    assert raised[0] >= raised[1]
    # Inside the raised band the model's order is kept.
    riskier = TaskTable.apply(verdict, [0.05, 0.04], THRESHOLDS)
    assert riskier[0] > raised[0] and riskier[1] > raised[1]


def test_value_kinds_cap_only_when_confident_in_covered_ground_without_tools() -> None:
    table = TaskTable()
    confident = _probabilities("summarization", 0.8)
    verdict = table.verdict(confident, False, False)
    assert verdict is not None and verdict.action == "cap" and verdict.tier == "economy"
    capped = TaskTable.apply(verdict, [0.9, 0.8], THRESHOLDS)
    assert choose_tier(capped, THRESHOLDS) == 0 and capped[0] >= capped[1]
    assert TaskTable.apply(verdict, [0.5, 0.4], THRESHOLDS)[0] < capped[0]
    assert table.verdict(_probabilities("summarization", 0.5), False, False) is None
    assert table.verdict(confident, True, False) is None  # tools: agent traffic
    assert table.verdict(confident, False, True) is None  # out of distribution


def test_auto_kinds_and_a_disabled_table_leave_the_model_alone() -> None:
    assert TaskTable().verdict(_probabilities("exam_question", 0.99), False, False) is None
    off = TaskTable(enabled=False)
    assert off.verdict(_probabilities("creative_writing", 0.99), False, False) is None
    assert TaskTable().verdict([], False, False) is None


def test_kinds_count_together_by_the_tier_the_table_gives_them() -> None:
    split = [0.0] * len(TASK_KINDS)
    split[TASK_KINDS.index("extraction")] = 0.4
    split[TASK_KINDS.index("code_generation")] = 0.25
    split[TASK_KINDS.index("lookup")] = 0.35
    verdict = TaskTable().verdict(split, False, False)  # 0.65 on standard-or-above kinds
    assert verdict is not None and verdict.tier == "standard" and verdict.kind == "extraction"
    assert verdict.probability == pytest.approx(0.65)
    values = [0.0] * len(TASK_KINDS)
    for kind in ("summarization", "draft", "compression"):
        values[TASK_KINDS.index(kind)] = 0.3
    values[TASK_KINDS.index("exam_question")] = 0.1
    capped = TaskTable().verdict(values, False, False)  # 0.9 on value kinds, none above 0.6 alone
    assert capped is not None and capped.action == "cap"


def test_extraction_raises_to_the_middle_tier_only() -> None:
    verdict = TaskTable().verdict(_probabilities("extraction", 0.9), False, False)
    assert verdict is not None and verdict.tier == "standard"
    moved = TaskTable.apply(verdict, [0.0, 0.0], THRESHOLDS)
    assert choose_tier(moved, THRESHOLDS) == 1


def test_config_is_validated_with_clear_errors() -> None:
    table = TaskTable.from_config({"cap_at": 0.9, "tiers": {"draft": "standard"}})
    assert table.cap_at == 0.9 and table.tiers == {"draft": "standard"}
    for bad, message in [
        ({"raise_at": 0}, "raise_at"),
        ({"cap_at": "high"}, "cap_at"),
        ({"enabled": "yes"}, "enabled"),
        ({"tiers": {"poetry": "premium"}}, "unknown kind"),
        ({"tiers": {"draft": "gold"}}, "not a tier"),
        ({"colour": 1}, "unknown keys"),
        ([1, 2], "mapping"),
    ]:
        with pytest.raises(ValueError, match=message):
            TaskTable.from_config(bad)  # type: ignore[arg-type]


def test_the_reader_sees_the_head_and_the_tail() -> None:
    short = list(range(10))
    assert kind_token_ids(short, None) == short
    long = list(range(1000))
    pooled = kind_token_ids(long, None)
    assert pooled == long[:KIND_HEAD_TOKENS] + long[-KIND_TAIL_TOKENS:]
    assert kind_token_ids(long, [7, 8, 9]) == [*long[:KIND_HEAD_TOKENS], 7, 8, 9]


def test_a_follow_up_takes_the_kind_of_the_thread_it_continues() -> None:
    table = TaskTable()
    math_thread = _probabilities("hard_reasoning", 0.9)
    question = _probabilities("lookup", 0.95)  # "and the area of its circumcircle?"
    verdict = table.verdict(question, False, False, math_thread)
    assert verdict == TaskVerdict("hard_reasoning", pytest.approx(0.9), "premium", "raise", True)
    assert "of the conversation" in verdict.describe()
    # No thread (all zeros, or none given): the last turn decides alone.
    alone = table.verdict(question, False, False)
    assert alone is not None and alone.action == "cap"
    assert table.verdict(question, False, False, [0.0] * len(TASK_KINDS)) == alone
    # A last turn that raises higher than the thread keeps its own verdict.
    code = _probabilities("code_generation", 0.9)
    extraction_thread = _probabilities("extraction", 0.9)
    assert table.verdict(code, False, False, extraction_thread) == table.verdict(code, False, False)
    # Extraction last turn in a math thread: the thread raises it further, to premium.
    raised = table.verdict(extraction_thread, False, False, math_thread)
    assert raised is not None and raised.tier == "premium" and raised.thread
    # Tools still leave the decision to the model and the rules.
    assert table.verdict(question, True, False, math_thread) is None


def test_the_thread_never_caps_and_disagreeing_readings_leave_the_model_to_decide() -> None:
    table = TaskTable()
    value_thread = _probabilities("lookup", 0.95)
    code = _probabilities("code_generation", 0.9)
    assert table.verdict(code, False, False, value_thread) == table.verdict(code, False, False)
    assert table.verdict(_probabilities("exam_question", 0.9), False, False, value_thread) is None
    # "Compress what we settled into a memo" after a costly-if-wrong thread: no verdict.
    compress = _probabilities("compression", 0.9)
    assert table.verdict(compress, False, False, _probabilities("costly_if_wrong", 0.9)) is None
    # After a value-kind thread the compression caps as it would alone.
    alone = table.verdict(compress, False, False)
    assert alone is not None and alone.action == "cap"
    assert table.verdict(compress, False, False, value_thread) == alone
