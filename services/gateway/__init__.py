"""The gateway: the HTTP front door, where people refer themselves (and later,
professionals without an integration refer the people they see)."""
