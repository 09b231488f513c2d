"""Linkwell's services: four independent processes that talk only through events."""
