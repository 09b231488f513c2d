"""A service process, once started, keeps what starting made out of the cyclic garbage
collector's passes and collects its young generation less often."""

from __future__ import annotations

import gc

from services.runtime.collector import GC_YOUNG, settle


def test_a_started_service_freezes_what_starting_made_and_collects_less_often():
    before = gc.get_threshold()
    try:
        kept = [[n] for n in range(1000)]  # alive across the settling: frozen
        settle()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (GC_YOUNG, *before[1:])
        frozen = gc.get_freeze_count()
        later = [[n] for n in range(1000)]  # made after: the collector's as ever
        assert gc.get_freeze_count() == frozen and len(later) == 1000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
