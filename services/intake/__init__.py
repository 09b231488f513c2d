"""intake: validates referrals, rejects with reasons, removes duplicates, stores and announces."""
