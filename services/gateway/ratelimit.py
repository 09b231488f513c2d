"""The gateway's rate limits: the sliding window is shared with the dashboard's sign-in
(``services/runtime/ratelimit.py``); this name stays for the gateway's code."""

from services.runtime.ratelimit import MAX_KEYS, Limits, Window

__all__ = ["MAX_KEYS", "Limits", "Window"]
