"""The feature module: schema, values on known requests, bounded cost on hostile ones."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.features import (
    FEATURE_NAMES,
    FEATURE_SCHEMA,
    FLOAT32_EXACT_MAX,
    N_FEATURES,
    FeatureExtractor,
)
from router_ml.request import MAX_MESSAGES, MAX_OUTPUT_TOKENS
from router_ml.tokenizer import get_encoding


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor()


def named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector.tolist(), strict=True))


def test_schema_is_ordered_unique_and_hashed() -> None:
    assert len(set(FEATURE_NAMES)) == N_FEATURES == len(FEATURE_SCHEMA.names)
    assert len(FEATURE_SCHEMA.hash) == 16
    assert FEATURE_SCHEMA.to_dict()["names"] == list(FEATURE_NAMES)


def test_single_turn_counts_and_position(extractor: FeatureExtractor) -> None:
    text = "Summarize this article in three bullet points, step by step."
    f = named(
        extractor.extract(
            {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": text},
                ],
                "max_tokens": 300,
                "response_format": {"type": "json_object"},
                "stream": True,
            }
        )
    )
    encode = get_encoding().encode_ordinary
    assert f["tokens_last_user"] == len(encode(text))
    assert f["tokens_system"] == len(encode("You are terse."))
    assert f["tokens_total"] == f["tokens_last_user"] + f["tokens_system"]
    assert f["n_messages"] == 2 and f["n_system"] == 1 and f["n_user"] == 1
    assert f["is_first_user_turn"] == 1 and f["user_turn_index"] == 1
    assert f["messages_since_last_user"] == 0 and f["last_role"] == 1
    assert f["max_tokens"] == 300 and f["has_max_tokens"] == 1
    assert f["json_mode"] == 1 and f["stream"] == 1
    assert f["cue_summarize"] == 1 and f["cue_reason"] == 1 and f["cue_translate"] == 0
    assert f["chars_last_user"] == len(text)


def test_agent_conversation_with_tools(extractor: FeatureExtractor) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "book",
                "description": "Book a flight",
                "parameters": {
                    "type": "object",
                    "required": ["origin", "date"],
                    "properties": {
                        "origin": {"type": "string"},
                        "date": {"type": "string"},
                        "cabin": {"type": "string", "enum": ["economy", "business"]},
                        "passengers": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        },
                    },
                },
            },
        }
    ]
    f = named(
        extractor.extract(
            {
                "messages": [
                    {"role": "user", "content": "Book me a flight"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "1",
                                "type": "function",
                                "function": {"name": "book", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "1", "content": "Error: missing origin"},
                    {"role": "assistant", "content": "Where from?"},
                    {"role": "user", "content": "From SFO"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "2",
                                "type": "function",
                                "function": {"name": "book", "arguments": '{"origin":"SFO"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "2", "content": '{"status": "booked"}'},
                ],
                "tools": tools,
                "tool_choice": "auto",
            }
        )
    )
    assert f["n_tools"] == 1
    assert f["tools_n_params"] == 5  # four top-level properties + one nested
    assert f["tools_n_required"] == 2 and f["tools_n_enum"] == 1
    assert f["tools_max_depth"] >= 5
    assert f["tool_choice"] == 2
    assert f["n_tool_calls"] == 2 and f["n_tool_results"] == 2
    assert f["last_is_tool_result"] == 1 and f["n_tool_errors"] == 1
    assert f["after_error"] == 0  # the newest tool result succeeded
    assert f["is_first_user_turn"] == 0 and f["user_turn_index"] == 2
    assert f["messages_since_last_user"] == 2
    assert f["tokens_assistant"] > 0


def test_text_signals(extractor: FeatureExtractor) -> None:
    question = (
        "Which of the following is a prime number?\nA. 4\nB. 6\nC. 7\nD. 9\n"
        "Answer with the letter of the correct option.\n```python\nx = {1: 2}\n```\n$\\frac{1}{2}$"
    )
    f = named(extractor.extract({"messages": [{"role": "user", "content": question}]}))
    assert f["n_choice_options"] == 4
    assert f["cue_choose"] == 1
    assert f["n_code_fences"] == 2
    assert f["has_latex"] == 1
    assert f["n_question_marks"] == 1
    assert 0 < f["code_char_ratio"] < 1 and 0 < f["digit_ratio"] < 1
    cjk = named(
        extractor.extract({"messages": [{"role": "user", "content": "请把这段话翻译成英文"}]})
    )
    assert cjk["cjk_ratio"] == 1.0 and cjk["non_ascii_ratio"] == 1.0


def test_images_and_parts(extractor: FeatureExtractor) -> None:
    f = named(
        extractor.extract(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.invalid/a.png"},
                            },
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.invalid/b.png"},
                            },
                            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                        ],
                    }
                ]
            }
        )
    )
    assert f["n_images"] == 2 and f["n_other_parts"] == 1


def test_vectors_are_float32_and_finite_even_for_huge_requests(extractor: FeatureExtractor) -> None:
    huge = "word " * 2_000_000  # 10 MB
    many = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"}
        for i in range(MAX_MESSAGES)
    ]
    deep: dict = {"type": "object"}
    node = deep
    for _ in range(5_000):
        node["properties"] = {"x": {"type": "object"}}
        node = node["properties"]["x"]
    requests = [
        {"messages": [{"role": "user", "content": huge}]},
        {"messages": many},
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}],
        },
        {"messages": [{"role": "user", "content": "\x00\ud800\U0010ffff" * 1000}]},
        {"messages": [{"role": "user", "content": ""}], "max_tokens": MAX_OUTPUT_TOKENS},
    ]
    matrix = extractor.extract_many(requests)
    assert matrix.dtype == np.float32 and matrix.shape == (len(requests), N_FEATURES)
    assert np.isfinite(matrix).all()
    assert matrix.max() <= FLOAT32_EXACT_MAX
    big = named(matrix[0])
    # 10 MB of "word " is ~2M tokens: extrapolated from the exact prefix, within 1%.
    assert abs(big["tokens_last_user"] - 2_000_000) / 2_000_000 < 0.01
    assert named(matrix[1])["n_messages"] == MAX_MESSAGES
    assert named(matrix[4])["max_tokens"] == FLOAT32_EXACT_MAX


def test_extraction_is_deterministic(extractor: FeatureExtractor) -> None:
    request = {"messages": [{"role": "user", "content": "Translate 'cat' to French."}]}
    assert np.array_equal(extractor.extract(request), FeatureExtractor().extract(request))


def test_empty_batch_has_the_schema_width(extractor: FeatureExtractor) -> None:
    assert extractor.extract_many([]).shape == (0, N_FEATURES)


def test_failure_recovery_features(extractor: FeatureExtractor) -> None:
    retry = {
        "messages": [
            {"role": "user", "content": "What is 17 * 23?"},
            {"role": "assistant", "content": "381"},
            {"role": "user", "content": "That's wrong, try again."},
        ]
    }
    f = named(extractor.extract(retry))
    assert f["user_rejects_answer"] == 1 and f["after_error"] == 0
    failed = {
        "messages": [
            {"role": "user", "content": "Book it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "b", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "Error: seat not available"},
        ]
    }
    f = named(extractor.extract(failed))
    assert f["after_error"] == 1 and f["user_rejects_answer"] == 0


def test_memoised_last_user_readings_equal_fresh_ones() -> None:
    long_text = ("Summarize the quarterly numbers and explain why margins fell? " * 20)[:1500]
    short_text = "Book the 9am flight instead."  # agents resend short turns too
    requests = [
        {"messages": [{"role": "user", "content": short_text}]},
        {
            "messages": [
                {"role": "user", "content": short_text},
                {"role": "assistant", "content": "Which date?"},
                {"role": "user", "content": short_text},
            ]
        },
        {"messages": [{"role": "user", "content": long_text}]},
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": long_text},
                {"role": "assistant", "content": "Margins fell."},
                {"role": "user", "content": long_text},
            ],
            "max_tokens": 50,
        },
        {"messages": [{"role": "user", "content": long_text + " Use a table."}]},
    ]
    cached = FeatureExtractor()
    fresh = FeatureExtractor(cache_size=0)
    first = cached.extract_many(requests)
    again = cached.extract_many(requests)  # every last user turn now comes from the memo
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh.extract_many(requests))
    assert not np.array_equal(first[2], first[4])
    with pytest.raises(ValueError, match="cache_size"):
        FeatureExtractor(cache_size=-1)


def test_the_thread_reading_is_the_joined_user_text_in_the_last_turns_columns() -> None:
    from router_ml.features import (
        LAST_TURN_TEXT_FEATURES,
        THREAD_FEATURES,
        THREAD_TURNS,
        thread_reading,
    )

    extractor = FeatureExtractor()
    material = "Triangle ABC has sides 5, 12 and 13.\nIts incircle touches AB at D."
    ask = "Find AD."
    conversation = {
        "messages": [
            {"role": "user", "content": material},
            {"role": "assistant", "content": "Understood."},
            {"role": "user", "content": ask},
        ]
    }
    row = extractor.extract(conversation)
    joined = extractor.extract({"messages": [{"role": "user", "content": f"{material}\n\n{ask}"}]})
    alone = extractor.extract({"messages": [{"role": "user", "content": ask}]})
    last = [FEATURE_NAMES.index(name) for name in LAST_TURN_TEXT_FEATURES]
    thread = [FEATURE_NAMES.index(name) for name in THREAD_FEATURES]
    np.testing.assert_array_equal(row[last], alone[last])  # the last turn's own reading
    np.testing.assert_array_equal(row[thread], joined[last])
    rows, read = thread_reading(np.vstack([alone, row]))
    assert rows.tolist() == [1]  # a single turn has no thread
    np.testing.assert_array_equal(read[0][last], joined[last])
    others = [i for i in range(N_FEATURES) if i not in last]
    np.testing.assert_array_equal(read[0][others], row[others])
    assert not alone[thread].any()
    # Only the last THREAD_TURNS earlier user turns join the last one.
    turns = []
    for k in range(THREAD_TURNS + 2):
        turns += [{"role": "user", "content": f"turn {k}"}, {"role": "assistant", "content": "ok"}]
    long_chat = {"messages": turns[:-1]}
    expected = "\n\n".join(f"turn {k}" for k in range(1, THREAD_TURNS + 2))
    single = extractor.extract({"messages": [{"role": "user", "content": expected}]})
    np.testing.assert_array_equal(extractor.extract(long_chat)[thread], single[last])
