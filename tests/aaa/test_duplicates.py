"""Tests of aaa.duplicates: every state transition of the reply cache, expiry on a
``task.Clock``, the eviction bound, the key's fields, and a property over interleavings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from aaa.duplicates import EXPIRE_STEP, ReplyCache, RequestKey, State

AUTH_A = bytes(range(16))
AUTH_B = bytes(range(1, 17))
KEY = RequestKey("192.0.2.1", 1645, 4, 7, AUTH_A)
REPLY = b"\x05\x07\x00\x14" + bytes(16)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> ReplyCache:
    return ReplyCache(clock, window_s=30)


# --------------------------------------------------------------------------- transitions


def test_first_arrival_is_new(cache: ReplyCache) -> None:
    verdict = cache.receive(KEY)
    assert verdict.state is State.NEW
    assert verdict.reply is None


def test_retransmit_while_in_progress_is_dropped(cache: ReplyCache) -> None:
    cache.receive(KEY)
    for _ in range(3):
        verdict = cache.receive(KEY)
        assert verdict.state is State.IN_PROGRESS
        assert verdict.reply is None


def test_retransmit_after_answer_gets_identical_bytes(cache: ReplyCache) -> None:
    cache.receive(KEY)
    reply = bytearray(REPLY)
    cache.answer(KEY, reply)
    reply[0] = 0  # the caller reusing its buffer must not change what is cached
    for _ in range(3):
        verdict = cache.receive(KEY)
        assert verdict.state is State.ANSWERED
        assert verdict.reply == REPLY


def test_forget_makes_the_next_retransmit_new(cache: ReplyCache) -> None:
    cache.receive(KEY)
    cache.forget(KEY)
    assert cache.receive(KEY).state is State.NEW
    assert cache.receive(KEY).state is State.IN_PROGRESS


def test_forget_after_answer_and_of_unknown_key(cache: ReplyCache) -> None:
    cache.forget(KEY)  # unknown: nothing happens
    cache.receive(KEY)
    cache.answer(KEY, REPLY)
    cache.forget(KEY)
    assert cache.receive(KEY).state is State.NEW
    assert len(cache) == 1


def test_answer_of_a_key_no_longer_held_is_stored(cache: ReplyCache, clock: Clock) -> None:
    cache.receive(KEY)
    clock.advance(31)  # processing outlived the window
    cache.answer(KEY, REPLY)
    assert cache.receive(KEY).reply == REPLY


# --------------------------------------------------------------------------- key fields


@pytest.mark.parametrize(
    "other",
    [
        KEY._replace(authenticator=AUTH_B),
        KEY._replace(identifier=8),
        KEY._replace(src_port=1646),
        KEY._replace(src_ip="192.0.2.2"),
        KEY._replace(code=1),
    ],
    ids=["authenticator", "identifier", "src_port", "src_ip", "code"],
)
def test_any_field_differing_is_a_new_request(cache: ReplyCache, other: RequestKey) -> None:
    cache.receive(KEY)
    cache.answer(KEY, REPLY)
    verdict = cache.receive(other)
    assert verdict.state is State.NEW
    assert verdict.reply is None


# --------------------------------------------------------------------------- expiry


def test_answered_entry_expires_after_window(cache: ReplyCache, clock: Clock) -> None:
    cache.receive(KEY)
    clock.advance(10)
    cache.answer(KEY, REPLY)  # the window restarts when the reply is sent
    clock.advance(29.9)
    assert cache.receive(KEY).state is State.ANSWERED
    clock.advance(0.1)
    assert cache.receive(KEY).state is State.NEW


def test_in_progress_entry_expires_after_window(cache: ReplyCache, clock: Clock) -> None:
    cache.receive(KEY)
    clock.advance(29.9)
    assert cache.receive(KEY).state is State.IN_PROGRESS  # a drop does not extend the window
    clock.advance(0.1)
    assert cache.receive(KEY).state is State.NEW


def test_expired_entries_are_pruned(cache: ReplyCache, clock: Clock) -> None:
    for identifier in range(100):
        cache.receive(KEY._replace(identifier=identifier))
    assert len(cache) == 100
    clock.advance(30)
    cache.receive(KEY._replace(identifier=200))
    assert len(cache) == 1


def test_a_backlog_of_expired_entries_is_pruned_in_bounded_steps_and_never_served(
    clock: Clock,
) -> None:
    """After a lull, no single request pays for removing the whole window (a reactor stall)."""
    cache = ReplyCache(clock, window_s=30, max_entries=10 * EXPIRE_STEP)
    backlog = 3 * EXPIRE_STEP
    for identifier in range(backlog):
        key = RequestKey("192.0.2.1", 1000 + identifier, 4, identifier % 256, AUTH_A)
        cache.receive(key)
        cache.answer(key, REPLY)
    clock.advance(31)
    last = RequestKey("192.0.2.1", 1000 + backlog - 1, 4, (backlog - 1) % 256, AUTH_A)
    assert cache.receive(last).state is State.NEW  # expired though not pruned yet: processed anew
    assert len(cache) == backlog - EXPIRE_STEP  # one step pruned, the re-received key moved to the end
    for n in range(3):
        cache.receive(KEY._replace(identifier=n))
    assert len(cache) == 1 + 3  # the rest pruned, step by step


def test_plain_callable_clock() -> None:
    now = [100.0]
    cache = ReplyCache(lambda: now[0], window_s=5)
    cache.receive(KEY)
    now[0] = 105.0
    assert cache.receive(KEY).state is State.NEW


@pytest.mark.parametrize(("window_s", "max_entries"), [(0, 10), (-1, 10), (30, 0)])
def test_bad_settings_rejected(clock: Clock, window_s: float, max_entries: int) -> None:
    with pytest.raises(ValueError):
        ReplyCache(clock, window_s=window_s, max_entries=max_entries)


def test_clock_of_wrong_type_rejected() -> None:
    with pytest.raises(TypeError):
        ReplyCache(object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- eviction


def test_bounded_memory_evicts_oldest(clock: Clock) -> None:
    cache = ReplyCache(clock, window_s=30, max_entries=3)
    keys = [KEY._replace(identifier=i) for i in range(5)]
    for key in keys:
        cache.receive(key)
        clock.advance(1)
    assert len(cache) == 3
    assert cache.evictions == 2
    assert cache.receive(keys[4]).state is State.IN_PROGRESS
    assert cache.receive(keys[2]).state is State.IN_PROGRESS
    assert cache.receive(keys[0]).state is State.NEW  # evicted, so processed again
    assert len(cache) == 3


def test_answer_refreshes_position_for_eviction(clock: Clock) -> None:
    cache = ReplyCache(clock, window_s=30, max_entries=2)
    first, second, third = (KEY._replace(identifier=i) for i in range(3))
    cache.receive(first)
    cache.receive(second)
    cache.answer(first, REPLY)  # now the newest
    cache.receive(third)  # evicts second, not first
    assert cache.receive(first).reply == REPLY
    assert cache.receive(second).state is State.NEW


# --------------------------------------------------------------------------- property

keys = st.builds(
    RequestKey,
    src_ip=st.sampled_from(["192.0.2.1", "192.0.2.2"]),
    src_port=st.sampled_from([1645, 1646]),
    code=st.sampled_from([1, 4]),
    identifier=st.integers(0, 2),
    authenticator=st.sampled_from([AUTH_A, AUTH_B]),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), keys),
        st.tuples(st.just("answer"), keys),
        st.tuples(st.just("forget"), keys),
        st.tuples(st.just("advance"), st.floats(0, 20)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=operations, max_entries=st.integers(1, 8))
def test_interleavings_never_cross_keys(ops: list[tuple[str, object]], max_entries: int) -> None:
    clock = Clock()
    cache = ReplyCache(clock, window_s=30, max_entries=max_entries)
    latest: dict[RequestKey, bytes] = {}  # the last reply given for each key
    for serial, (op, arg) in enumerate(ops):
        if op == "advance":
            assert isinstance(arg, float)
            clock.advance(arg)
            continue
        assert isinstance(arg, RequestKey)
        if op == "receive":
            verdict = cache.receive(arg)
            if verdict.state is State.ANSWERED:
                assert verdict.reply == latest[arg]
                assert verdict.reply.startswith(repr(arg).encode())
            else:
                assert verdict.reply is None
        elif op == "answer":
            latest[arg] = repr(arg).encode() + b"#" + str(serial).encode()
            cache.answer(arg, latest[arg])
        else:
            cache.forget(arg)
        assert len(cache) <= max_entries
