"""triage: places accepted referrals against each PCN's link worker capacity and waitlist."""
