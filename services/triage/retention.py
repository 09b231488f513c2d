"""What triage removes on a schedule (docs/retention.md): a placement (referral id, PCN,
practice, needs, the link worker, a pseudonymous person id) ``LINKWELL_RETAIN_ENDED_DAYS``
after the referral closed or was withdrawn (``closed_at``, set by either); a referral
joined to another's episode goes once that episode's placement has gone. The roster
(link worker ids and capacities, no names) is kept while it is in use."""

from __future__ import annotations

from services.runtime.retention import DAY, Rule

RETENTION = (
    Rule(
        "placement_ended",
        "referral",
        "closed_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="status IN ('closed', 'withdrawn')",
    ),
    # joined: its episode's row has ended and gone (the rule above); accepted_at is
    # before the episode's end, so this never removes it sooner than its episode
    Rule(
        "placement_joined",
        "referral",
        "accepted_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="status = 'joined' AND NOT EXISTS (SELECT 1 FROM referral e"
        " WHERE e.referral_id = referral.episode_referral_id)",
    ),
)
