"""Delivery: the background loop that sends the outbox, and its channels (email, webhook)."""
