"""Operator tools: the ``linkwell`` command and what it drives (broker access, dead
letters, AsyncAPI documents, the demo, submitting as an agency would). Nothing in the
runtime or the services imports this package."""
