"""The reporting model outcomes keeps (schema ``<ns>_reporting``): the projection written in
the transaction of each event it handles (``store.Projection``) and the schema's migrations.
What reads it (figures, disclosure, reports, pictures, the dashboard) is the read side,
``services/readside`` (docs/domain.md#outcomes-evidence-and-money)."""
