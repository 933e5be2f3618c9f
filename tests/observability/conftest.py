"""Metrics, traces and the dashboard, against real servers, a real SMTP server and Envoy."""

from tests.notifications.conftest import smtp

__all__ = ["smtp"]
