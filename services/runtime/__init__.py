"""The small runtime every Linkwell service shares.

settings (environment) -> names (everything derived from the namespace) -> topology,
database (pool, migrations) -> inbox and outbox -> the consumer (decode, dispatch, retry,
dead-letter) -> the service runner (start, run, graceful stop).
"""
