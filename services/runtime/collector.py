"""The cyclic garbage collector, tuned once a service process has started."""

from __future__ import annotations

import gc

# the young generation's size for the cyclic garbage collector, once started (Python's
# default is 700 allocations: dozens of passes while one batch is handled)
GC_YOUNG = 10_000


def settle() -> None:
    """Once the service process has started: what starting made (modules, the contract's
    models and validators, pools, the broker client) lives as long as the process, so it
    is moved out of the cyclic collector's reach (``gc.freeze``) instead of being walked
    again at every full pass, and the young generation is collected every ``GC_YOUNG``
    allocations (the benchmark's profile of each service showed the collector at 3-9% of
    its CPU). Only for a service's own process: ``run``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
