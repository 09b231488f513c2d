"""Retention rules, as pure functions: when a row's time is up, what a sweep runs, the
broker's queue limits, and notify's spool files (private, pruned by their age)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.gateway.retention import RETENTION as GATEWAY
from services.intake.retention import RETENTION as INTAKE
from services.notify.channels import FileChannel, Outgoing, spool_line_kept
from services.notify.domain import Medium
from services.notify.retention import RETENTION as NOTIFY
from services.outcomes.retention import RETENTION as OUTCOMES
from services.runtime import retention
from services.runtime.retention import (
    DAY,
    RUNTIME_RULES,
    YEAR,
    Rule,
    cutoff,
    ended,
    expired,
    statement,
)
from services.runtime.settings import Settings
from services.triage.retention import RETENTION as TRIAGE

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).parents[2]


def test_a_row_expires_once_its_limit_has_passed_and_not_before():
    limit = 7 * DAY
    assert not expired(NOW - timedelta(days=7) + timedelta(seconds=1), NOW, limit)
    assert expired(NOW - timedelta(days=7, seconds=1), NOW, limit)
    assert not expired(None, NOW, limit)  # not started yet (an unpublished outbox row)
    assert cutoff(NOW, limit) == NOW - timedelta(days=7)


def test_a_limit_must_be_positive():
    with pytest.raises(ValueError):
        cutoff(NOW, 0)


@pytest.mark.parametrize("bad", ["outbox; DROP TABLE x", "Outbox", "a b"])
def test_a_rule_names_plain_tables_and_columns_only(bad):
    with pytest.raises(ValueError):
        Rule("x", bad, "created_at", lambda s, o: 1.0)
    with pytest.raises(ValueError):
        Rule("x", "outbox", bad, lambda s, o: 1.0)


def test_a_redacting_rule_says_what_and_how_a_redacted_row_looks():
    with pytest.raises(ValueError):
        Rule("x", "t", "c", lambda s, o: 1.0, action="redact")
    with pytest.raises(ValueError):
        Rule("x", "t", "c", lambda s, o: 1.0, action="delete", redact={"a": "''"})


def test_the_runtime_keeps_unpublished_outbox_rows_whatever_their_age():
    outbox = next(r for r in RUNTIME_RULES if r.table == "outbox")
    sql = statement(outbox)
    assert sql.startswith("DELETE FROM outbox")
    assert "published_at IS NOT NULL" in sql and "published_at < $1" in sql
    assert "LIMIT $2" in sql and "SKIP LOCKED" in sql


def test_redaction_never_touches_a_row_twice():
    sent = next(r for r in NOTIFY if r.store == "notification_sent")
    sql = statement(sent)
    assert sql.startswith("UPDATE notification SET address = ''")
    assert "NOT (body = '' AND address = '')" in sql


def test_every_rule_names_a_table_and_column_its_migrations_create():
    def text(*dirs: str) -> str:
        return "".join(p.read_text() for d in dirs for p in sorted((ROOT / d).glob("*.sql")))

    runtime = text("services/runtime/migrations")
    for rules, own in (
        (RUNTIME_RULES, ""),
        (NOTIFY, "services/notify/migrations"),
        (GATEWAY, "services/gateway/migrations"),
        (INTAKE, "services/intake/migrations"),
        (TRIAGE, "services/triage/migrations"),
        (OUTCOMES, "services/outcomes/migrations"),
    ):
        sql = runtime + (text(own) if own else "") + text("services/outcomes/reporting/migrations")
        for rule in rules:
            assert f"CREATE TABLE {rule.table} (" in sql, rule
            assert f" {rule.column} " in sql, rule


def test_limits_come_from_settings_with_the_documented_defaults(monkeypatch):
    from services.gateway.settings import GatewaySettings
    from services.notify.settings import NotifySettings

    monkeypatch.setenv("LINKWELL_RETAIN_OUTBOX_DAYS", "2")
    shared = Settings()
    outbox = next(r for r in RUNTIME_RULES if r.table == "outbox")
    assert outbox.limit(shared, None) == 2 * DAY
    assert next(r for r in RUNTIME_RULES if r.table == "inbox").limit(shared, None) == 90 * DAY
    assert NOTIFY[0].limit(shared, NotifySettings()) == 30 * DAY
    sign_in = next(r for r in GATEWAY if r.table == "sign_in")
    assert sign_in.limit(shared, GatewaySettings()) == 90 * DAY


def test_dead_letter_and_unrouted_queues_get_a_message_ttl_policy():
    settings = Settings(namespace="linkwell", retain_dead_letter_days=14, retain_unrouted_days=3)
    dead, unrouted = retention.queue_policies(settings)
    import re

    pattern = re.compile(dead["pattern"])
    for queue in ("linkwell.intake.dead-letter", "linkwell.org.A81001.dead-letter"):
        assert pattern.match(queue)
    for queue in (
        "linkwell.intake",
        "linkwell.intake.retry.500ms",
        "other.intake.dead-letter",
        "linkwellx.intake.dead-letter",
    ):
        assert not pattern.match(queue)
    assert dead["definition"] == {"message-ttl": 14 * 86_400_000}
    assert re.match(unrouted["pattern"], "linkwell.events.unrouted")
    assert not re.match(unrouted["pattern"], "linkwell.events.unrouted.x")
    assert unrouted["definition"] == {"message-ttl": 3 * 86_400_000}
    assert {p["apply-to"] for p in (dead, unrouted)} == {"queues"}


def test_the_committed_definitions_carry_the_retention_policies():
    defs = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    names = {p["name"]: p for p in defs["policies"]}
    assert names["linkwell-dead-letter-retention"]["definition"]["message-ttl"] > 0
    assert names["linkwell-unrouted-retention"]["definition"]["message-ttl"] > 0


# ------------------------------------------------------------------ notify's spool


def _line(at: datetime, key: str = "k") -> bytes:
    return (json.dumps({"key": key, "to": "x", "queued_at": at.isoformat()}) + "\n").encode()


def test_a_spool_line_is_kept_within_its_limit_only():
    assert spool_line_kept(_line(NOW - timedelta(days=6)), NOW, 7 * DAY)
    assert not spool_line_kept(_line(NOW - timedelta(days=8)), NOW, 7 * DAY)
    assert not spool_line_kept(b'{"key": "k", "to": "x"', NOW, 7 * DAY)  # cut short
    assert not spool_line_kept(b'{"key": "k"}\n', NOW, 7 * DAY)


def _outgoing(key: str) -> Outgoing:
    return Outgoing(key=key, medium=Medium.SMS, address="07700900123", subject="s", body="b")


def test_spool_files_are_readable_by_the_service_alone(tmp_path):
    old = os.umask(0o022)
    try:
        directory = tmp_path / "spool" / "ns"
        channel = FileChannel(directory)
        channel._write([_outgoing("a")])
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "sms.jsonl").stat().st_mode) == 0o600


def test_a_spool_file_made_world_readable_before_is_made_private(tmp_path):
    directory = tmp_path / "ns"
    directory.mkdir(mode=0o755)
    spool = directory / "sms.jsonl"
    spool.write_bytes(b"")
    spool.chmod(0o644)
    FileChannel(directory)._write([_outgoing("a")])
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_prune_removes_lines_past_the_limit_and_keeps_the_rest(tmp_path):
    directory = tmp_path / "ns"
    directory.mkdir(mode=0o700)
    spool = directory / "sms.jsonl"
    spool.write_bytes(
        _line(NOW - timedelta(days=9), "old")
        + _line(NOW - timedelta(days=1), "new")
        + b'{"key": "torn"'
    )
    channel = FileChannel(directory, retain_seconds=7 * DAY)
    assert channel.prune(NOW) == {"sms": 2}
    keys = [json.loads(line)["key"] for line in spool.read_bytes().splitlines()]
    assert keys == ["new"]
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert channel.prune(NOW) == {}  # nothing more to do
    # ten days on, the last one goes too
    assert channel.prune(NOW + timedelta(days=10)) == {"sms": 1}
    assert spool.read_bytes() == b""


def test_without_a_limit_nothing_is_pruned(tmp_path):
    (tmp_path / "sms.jsonl").write_bytes(_line(NOW - timedelta(days=900)))
    assert FileChannel(tmp_path).prune(NOW) == {}


def test_a_person_expires_only_once_every_referral_ended_past_the_limit():
    limit = 90 * DAY
    long_ago, lately = NOW - timedelta(days=91), NOW - timedelta(days=89)
    assert ended([long_ago], NOW, limit)
    assert ended([long_ago, NOW - timedelta(days=400)], NOW, limit)
    assert not ended([long_ago, lately], NOW, limit)  # the last end counts
    assert not ended([long_ago, None], NOW, limit)  # one still open keeps the person
    assert not ended([], NOW, limit)  # no referral: no clock


def test_the_record_of_care_is_kept_never_less_than_eight_years_after_closure():
    closed = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    limit = Settings().retain_record_years * YEAR
    assert Settings().retain_record_years == 8  # the Code's adult health records entry
    assert not expired(closed, datetime(2034, 2, 28, 11, 0, tzinfo=UTC), limit)
    assert expired(closed, datetime(2034, 3, 1, 12, 0, tzinfo=UTC), limit)


def test_operational_copies_go_a_set_time_after_their_referral_ended(monkeypatch):
    monkeypatch.setenv("LINKWELL_RETAIN_ENDED_DAYS", "3")
    shared = Settings()
    for rules, store in (
        (INTAKE, "referral_ended"),
        (INTAKE, "person"),
        (NOTIFY, "referral_contact"),
        (TRIAGE, "placement_ended"),
        (GATEWAY, "submission_ended"),
    ):
        rule = next(r for r in rules if r.store == store)
        assert rule.limit(shared, None) == 3 * DAY, store
    assert Settings.model_fields["retain_ended_days"].default == 90


def test_a_rule_on_another_schema_runs_on_that_schema_only():
    fact = next(r for r in OUTCOMES if r.store == "reporting_fact")
    assert fact.schema == "reporting"
    sql = statement(fact, "ns_reporting.referral_fact")
    assert sql.startswith("UPDATE ns_reporting.referral_fact SET referral_id = gen_random_uuid()")
    assert "NOT (anonymised)" in sql and "ended_at < $1" in sql
    with pytest.raises(ValueError):
        Rule("x", "t", "c", lambda s, o: DAY, schema="other; DROP")


def test_outcomes_anonymises_the_facts_before_it_deletes_the_record():
    order = [r.store for r in OUTCOMES]
    assert order.index("reporting_fact") < order.index("record_referral")
    fact = next(r for r in OUTCOMES if r.store == "reporting_fact")
    assert {"person_id", "link_worker_id", "referral_id"} <= set(fact.redact)
