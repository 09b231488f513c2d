from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..stack import ProcessStack


@pytest.fixture
async def stack(settings, tmp_path: Path) -> AsyncIterator[ProcessStack]:
    stack = ProcessStack(settings, tmp_path)
    await stack.start_all()
    try:
        yield stack
    finally:
        codes = stack.stop_all()
        print({name: stack.tail(name, 5) for name in codes if codes[name] not in (0, -9)})
