"""The SNOMED CT concepts Linkwell writes back to GP records.

Only concepts traceable to a published source are held here; ``GpCoding``
refuses any other code, so a typo cannot reach a GP record.
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED_CT_SYSTEM = "http://snomed.info/sct"

_NHSE = (
    "NHS England: national SNOMED CT codes for recording social prescribing "
    "(docs/domain.md#snomed-ct-codes-and-their-sources)"
)
_MHSDS = (
    "NHS Mental Health Services Data Set, assessment scales: the SWEMWBS score "
    "(docs/domain.md#snomed-ct-codes-and-their-sources)"
)


@dataclass(frozen=True, slots=True)
class Concept:
    code: str
    display: str
    semantic_tag: str
    when: str
    source: str


REFERRAL_TO_SOCIAL_PRESCRIBING = Concept(
    code="871731000000106",
    display="Referral to social prescribing service",
    semantic_tag="procedure",
    when="The person accepts the referral: first interaction of an episode only.",
    source=_NHSE,
)
SOCIAL_PRESCRIBING_DECLINED = Concept(
    code="871711000000103",
    display="Social prescribing declined",
    semantic_tag="situation",
    when="The person declines social prescribing.",
    source=_NHSE,
)
SELF_REFERRAL = Concept(
    code="306098008",
    display="Self-referral",
    semantic_tag="procedure",
    when="The person referred themself; sent with the acceptance code.",
    source=_NHSE + "; SNOMED CT International core concept 306098008",
)

SWEMWBS_SCORE = Concept(
    code="718466001",
    display="SWEMWBS score",
    semantic_tag="observable entity",
    when="A SWEMWBS measurement; its value is the metric score (7 to 35).",
    source=_MHSDS,
)

REGISTRY: dict[str, Concept] = {
    c.code: c
    for c in (
        REFERRAL_TO_SOCIAL_PRESCRIBING,
        SOCIAL_PRESCRIBING_DECLINED,
        SELF_REFERRAL,
        SWEMWBS_SCORE,
    )
}
