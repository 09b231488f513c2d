"""outcomes: keeps each referral's timeline and writes SNOMED CT codes back to the GP."""
