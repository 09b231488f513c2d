"""The reporting read side: figures for practices, PCNs and commissioners, disclosure
control, text, CSV and JSON reports, pictures, dashboard tokens and the dashboard
(docs/domain.md#outcomes-evidence-and-money).

Not one of the event-consuming services: it consumes no event and owns no schema. It reads
the reporting model outcomes publishes (schema ``<ns>_reporting``, projected in outcomes'
own transactions by ``services/outcomes/reporting/store.py``) as a read model, in
read-only sessions (``store.read_only_pool``), and imports nothing of outcomes but the
pure definitions of the wellbeing instruments (``services.outcomes.wellbeing``). The
dashboard only reads. Two operator commands write through it, never the projected facts:
``linkwell access token`` the dashboard's tokens (``tokens.py``, table ``dashboard_token``
in the same schema), and ``linkwell synthetic`` the separate synthetic model
(``<ns>_synthetic``, ``synthetic.py``).
Served by Starlette with Jinja2 templates (``web.py``, ``templates/``); matplotlib is
loaded only to draw (``plots.py``), never by the dashboard.
"""
