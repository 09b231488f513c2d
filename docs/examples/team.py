"""A link worker team takes what its queue receives: every type, never crashing on one.

    LINKWELL_PCN=U12345 LINKWELL_URL=amqp://U12345:dev-U12345@127.0.0.1:5672/ \
        python docs/examples/team.py

Your queue `<namespace>.org.<PCN>` receives your PCN's assignments, waitlistings and
referrals that joined a person's open episode, referrals whose NHS number was given before
with another date of birth or that came without one (confirm who the person is; for one
without, send `referral.identity_confirmed.v1`), notices of messages that could not be
delivered, and the answers to what you sent (`event.rejected.v1`: nothing about a
referral, so no `referral_id`). A message your code fails on is rejected and kept in
`<namespace>.org.<PCN>.dead-letter`, which you can read: nothing is lost.
"""

import asyncio
import json
import os

import aio_pika

PCN = os.environ.get("LINKWELL_PCN", "U12345")  # your PCN's code = broker username
URL = os.environ.get("LINKWELL_URL", f"amqp://{PCN}:dev-{PCN}@127.0.0.1:5672/")
NAMESPACE = os.environ.get("LINKWELL_NAMESPACE", "linkwell")
IDLE = float(os.environ.get("LINKWELL_IDLE_EXIT", "0"))  # stop after this long idle; 0: never


def handle(event: dict) -> None:
    data = event.get("data") or {}
    match event.get("type"):
        case "referral.assigned.v1":
            moved = (
                f" (moved from {data['transferred_from']})" if data.get("transferred_from") else ""
            )
            print(f"assigned {data['referral_id']} to {data['link_worker_id']}{moved}")
        case "referral.waitlisted.v1":
            print(f"waitlisted {data['referral_id']} {data.get('reason') or ''}".rstrip())
        case "referral.joined.v1":
            print(f"{data['referral_id']} joined the episode of {data['episode_referral_id']}")
        case "referral.identity_conflict.v1":
            missing = " (no NHS number yet)" if data.get("nhs_number_missing") else ""
            print(f"check who {data['referral_id']} is{missing}: {data['message']}")
        case "notification.failed.v1":
            who, rid = data["audience"], data["referral_id"]
            print(f"could not tell the {who} of {rid}: reach them another way")
        case "event.rejected.v1":
            for reason in data["reasons"]:
                print(
                    f"rejected {data['rejected_event_id']} ({data.get('rejected_type')}): "
                    f"{reason['code']}: {reason['message']}"
                )
        case other:  # a type added to the contract later: shown, never a crash
            print(f"received {other}")


async def main() -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        queue = await channel.get_queue(f"{NAMESPACE}.org.{PCN}", ensure=False)
        async with queue.iterator() as messages:
            while True:
                try:
                    async with asyncio.timeout(IDLE or None):
                        message = await anext(messages)
                except TimeoutError:
                    return
                # acknowledged after handling; an exception rejects it to the dead-letter queue
                async with message.process(requeue=False):
                    handle(json.loads(message.body))


if __name__ == "__main__":
    asyncio.run(main())
