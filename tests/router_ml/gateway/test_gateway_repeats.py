"""The request-hash cache: same client and conversation within the window is a repeat."""

from __future__ import annotations

from router_ml.gateway.repeats import RepeatCache

HELLO = {"messages": [{"role": "user", "content": "hi"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_same_request_again_within_the_window_is_a_repeat() -> None:
    clock = Clock()
    cache = RepeatCache(60, clock=clock)
    digest = cache.digest(HELLO, "token-a")
    assert not cache.seen(digest)
    clock.now += 30
    assert cache.seen(digest)
    clock.now += 61
    assert not cache.seen(digest)  # too long after the last sighting


def test_other_clients_users_and_conversations_are_not_repeats() -> None:
    cache = RepeatCache(60, clock=Clock())
    assert not cache.seen(cache.digest(HELLO, "token-a"))
    assert not cache.seen(cache.digest(HELLO, "token-b"))
    assert not cache.seen(cache.digest({**HELLO, "user": "u2"}, "token-a"))
    other = {"messages": [{"role": "user", "content": "hello"}]}
    assert not cache.seen(cache.digest(other, "token-a"))
    # Fields that do not change the conversation (stream, metadata) do not make it new.
    assert cache.seen(cache.digest({**HELLO, "stream": True, "metadata": {"x": "1"}}, "token-a"))


def test_capacity_bounds_memory_and_zero_window_turns_it_off() -> None:
    cache = RepeatCache(60, capacity=2, clock=Clock())
    digests = [cache.digest({"messages": [{"role": "user", "content": str(i)}]}) for i in range(3)]
    for digest in digests:
        cache.seen(digest)
    assert not cache.seen(digests[0])  # evicted by the third
    off = RepeatCache(0)
    digest = off.digest(HELLO)
    assert not off.seen(digest) and not off.seen(digest)
