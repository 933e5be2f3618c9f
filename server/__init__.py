"""Meetings API server."""
