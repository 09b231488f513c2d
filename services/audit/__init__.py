"""audit: the append-only, hash-chained trail of disclosures (docs/architecture/audit.md)."""
