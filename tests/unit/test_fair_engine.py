"""An engine that does not enforce fair issuance is refused by name, never silently used."""

from __future__ import annotations

import pytest

from xfq.services.fair import EngineUnsupported, fair_engine


class PlainEngine:
    def submit(self, *args: object) -> None: ...

    def remaining(self, type_id: str) -> int:
        return 0

    def close(self) -> None: ...


def test_an_engine_without_the_fair_methods_is_refused_with_the_reason() -> None:
    with pytest.raises(EngineUnsupported, match=r"a household needs .* PlainEngine does not"):
        fair_engine(PlainEngine(), "a household")
