import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.audit import domain


def rec(seq: int, **changes) -> domain.Record:
    fields = dict(
        seq=seq,
        event_id=f"e-{seq}",
        source="urn:linkwell:linkwell:notify",
        action="status",
        recipient_kind="referrer",
        recipient_org="A81001",
        referral_id=uuid.UUID(int=seq),
        person_id=None,
        by_service="notify",
        by_kind="service",
        by=None,
        at=datetime(2026, 9, 7, 9, 0, seq, tzinfo=UTC),
        detail={"event_id": f"s-{seq}"},
    )
    return domain.Record(**{**fields, **changes})


def chained(records):
    out, previous = [], domain.GENESIS
    for r in records:
        digest = domain.chain_hash(previous, r)
        out.append((r, previous, digest))
        previous = digest
    return out


def test_canonical_form_is_sorted_compact_and_zone_independent():
    a = rec(1)
    b = rec(1, at=a.at.astimezone(timezone(timedelta(hours=1))), detail={"event_id": "s-1"})
    assert a.canonical() == b.canonical()
    text = a.canonical().decode()
    assert " " not in text and text.startswith(
        '{"action":"status","at":"2026-09-07T09:00:01.000000+00:00"'
    )


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        rec(1, at=datetime(2026, 9, 7, 9, 0)).canonical()


def test_the_hash_covers_the_previous_hash_and_every_field():
    r = rec(1)
    h = domain.chain_hash(domain.GENESIS, r)
    assert len(h) == 64
    assert domain.chain_hash("f" * 64, r) != h
    assert domain.chain_hash(domain.GENESIS, rec(1, recipient_org="B82005")) != h
    assert domain.chain_hash(domain.GENESIS, rec(1, detail={"event_id": "other"})) != h


def test_verify_accepts_an_intact_chain_and_names_the_first_break():
    rows = chained([rec(1), rec(2), rec(3)])
    assert domain.verify(rows) == (3, None)
    changed = list(rows)
    changed[1] = (rec(2, recipient_org="B82005"), rows[1][1], rows[1][2])
    assert domain.verify(changed)[1] == domain.Break(2, "its content does not match its hash")
    assert domain.verify([rows[0], rows[2]])[1].seq == 3  # one removed
    rehashed = [*chained([rec(1), rec(2, recipient_org="B82005")]), rows[2]]
    assert domain.verify(rehashed)[1] == domain.Break(
        3, "its previous hash is not the record before's"
    )
    assert domain.verify([]) == (0, None)
