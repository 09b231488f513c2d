"""notify: tells referrers, link worker teams and people what happened."""
