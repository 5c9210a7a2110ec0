"""The client's pacing (``patron.client.pacing.Pacer``): when the next request may leave."""

from __future__ import annotations

import pytest

from patron.client.pacing import MARGIN, Pacer

POLICY = {"ratelimit-policy": '"push";q=8;w=1'}


def test_requests_sent_before_the_rate_was_announced_count_against_it() -> None:
    """Four requests leave at once before the first answer tells the rate (8 a second); the next
    ones leave so that no second holds more than eight, counting those four."""
    pacer = Pacer()
    assert [pacer.slot() for _ in range(4)] == [0.0] * 4
    pacer.learn(POLICY)
    interval = (1 + MARGIN) / 8
    waits = [pacer.slot() for _ in range(4)]
    assert waits == pytest.approx([interval * n for n in (4, 5, 6, 7)], abs=0.05)


def test_once_the_rate_is_known_requests_leave_at_it() -> None:
    pacer = Pacer()
    pacer.learn(POLICY)
    waits = [pacer.slot() for _ in range(3)]
    assert waits == pytest.approx([0, (1 + MARGIN) / 8, 2 * (1 + MARGIN) / 8], abs=0.05)


def test_a_rate_announced_late_holds_requests_back_for_one_window_at_most() -> None:
    """A server that announced no rate (an account without a limit) and then does (its limit set
    meanwhile): the many requests sent before count as one full window, not one slot each."""
    pacer = Pacer()
    for _ in range(1000):
        pacer.slot()
    pacer.learn(POLICY)
    assert pacer.slot() == pytest.approx(1 + MARGIN, abs=0.05)
