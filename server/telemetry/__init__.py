"""Metrics, activity and traces: leaves every layer may use (they import nothing else of
the service)."""
