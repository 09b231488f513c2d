"""The dispatcher's pure rules: a refused message backs off on its own; a channel that
cannot be reached is down, probed soon and often, and back as soon as it answers."""

from __future__ import annotations

import pytest

from services.notify.domain import MAX_PROBE, ChannelState, backoff, probe_delay
from services.runtime.poller import failure_wait


def test_a_refused_message_backs_off_1_2_4_seconds_up_to_an_hour():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(13) == 3600.0 and backoff(30) == 3600.0


def test_a_channel_down_is_probed_every_quarter_second_growing_to_two_seconds():
    assert [probe_delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    # never more, however long the outage (a probe every 2 s: 1,100 in 37 minutes)
    assert probe_delay(1100) == probe_delay(10**6) == MAX_PROBE == 2.0


def test_a_new_channel_is_probed_before_its_first_message_then_releases():
    state = ChannelState()
    assert state.down and state.usable(0.0)  # unknown: a probe is due at once
    assert state.release  # a previous process may have left messages held
    state.reached()
    assert not state.down and state.outages == 0


def test_an_outage_takes_the_channel_down_until_its_probe_is_due():
    state = ChannelState(down=False, release=False)
    state.unreachable(now=100.0)
    assert state.down and state.release and state.outages == 1
    assert not state.usable(100.2)
    assert state.usable(100.25)
    state.unreachable(now=100.25)  # the probe failed
    assert state.probe_at == pytest.approx(100.75)


def test_a_probe_that_answers_brings_it_back_but_only_a_delivery_forgets_the_outages():
    state = ChannelState()
    for now in (0.0, 1.0, 2.0):
        state.unreachable(now)
    state.reached()
    assert state.usable(2.0) and not state.down and state.outages == 3
    state.unreachable(3.0)  # answers probes, drops messages: probed less and less often
    assert state.probe_at == 3.0 + MAX_PROBE
    state.reached()
    state.delivered()
    assert state.outages == 0 and not state.down
    state.unreachable(10.0)
    assert state.probe_at == 10.25


def test_a_poller_retries_a_lost_database_at_most_every_two_seconds():
    assert [failure_wait(n) for n in range(1, 6)] == [0.4, 0.8, 1.6, 2.0, 2.0]
    # an outage of hours: 2 ** 1024 would no longer fit a float and kill the poller
    assert failure_wait(1100) == failure_wait(10**6) == 2.0
