"""The evidence: a reporting model fed by outcomes' events, figures for practices, PCNs and
commissioners, disclosure control, and pictures (docs/domain.md#outcomes-evidence-and-money)."""
