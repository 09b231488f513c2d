from services.registry import SERVICE_DEFS  # noqa: F401
