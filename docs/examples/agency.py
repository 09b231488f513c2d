"""An agency submits a referral and waits for the answer to it.

    LINKWELL_ORG=A81001 LINKWELL_URL=amqp://A81001:dev-A81001@127.0.0.1:5672/ \
        python docs/examples/agency.py

Every answer names the submission it answers (`submission_event_id`, or
`rejected_event_id` for an envelope that could not be read) and carries your reference.
Answers to earlier submissions that are still in your queue are acknowledged and shown.
"""

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime

import aio_pika

ORG = os.environ.get("LINKWELL_ORG", "A81001")  # your organisation code = broker username
URL = os.environ.get("LINKWELL_URL", f"amqp://{ORG}:dev-{ORG}@127.0.0.1:5672/")
NAMESPACE = os.environ.get("LINKWELL_NAMESPACE", "linkwell")
EXAMPLE = os.environ.get("LINKWELL_EXAMPLE", "contracts/examples/referral.submitted.v1.json")
WAIT = float(os.environ.get("LINKWELL_WAIT", "30"))  # seconds for an answer


def answers_to(event: dict, submission_id: str) -> bool:
    data = event.get("data") or {}
    return submission_id in (data.get("submission_event_id"), data.get("rejected_event_id"))


def new_referral() -> dict:
    with open(EXAMPLE) as f:
        referral = json.load(f)
    referral["id"] = str(uuid.uuid4())  # a new id per event
    referral["source"] = f"urn:linkwell:org:{ORG}"  # who you are
    referral["time"] = datetime.now(UTC).isoformat()
    reference = f"REF-{uuid.uuid4().hex[:10]}"  # your own reference: one per referral
    referral["data"]["sender_reference"] = referral["subject"] = reference
    return referral


async def main(referral: dict) -> int:
    reference = referral["data"]["sender_reference"]
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()  # publisher confirms on
        answers = await channel.get_queue(f"{NAMESPACE}.org.{ORG}", ensure=False)
        inbound = await channel.get_exchange(f"{NAMESPACE}.inbound", ensure=False)
        await inbound.publish(
            aio_pika.Message(
                json.dumps(referral).encode(),
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=ORG,  # the broker vouches for it
            ),
            routing_key=referral["type"],  # referral.submitted.v1
        )
        print(f"submitted {reference} as event {referral['id']}")
        try:
            async with asyncio.timeout(WAIT), answers.iterator() as messages:
                async for message in messages:
                    async with message.process():  # acknowledged once handled
                        event = json.loads(message.body)
                        data = event.get("data") or {}
                        if not answers_to(event, referral["id"]):
                            earlier = data.get("sender_reference")
                            print(f"  (an earlier answer: {event['type']} {earlier})")
                            continue
                        if event["type"] == "referral.accepted.v1":
                            continue  # deprecated, published beside v2 until 2027-06-30
                        if event["type"] == "referral.accepted.v2":
                            print(f"accepted {reference}: referral {data['referral_id']}")
                        elif event["type"] == "referral.status.v1":
                            print(f"status {data['task_status']}: {data['message']}")
                        else:  # referral.rejected.v1, event.rejected.v1, referral.duplicate.v1
                            print(f"{event['type']} {reference}:")
                            for reason in data.get("reasons", []):
                                where = reason.get("field", "")
                                print(f"  {reason['code']} {where}: {reason['message']}")
                        return 0
        except TimeoutError:
            print(f"no answer to {reference} within {WAIT:.0f} s")
            return 1
    return 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(new_referral())))
