"""Delivery loops for tests, built the way server.app builds them."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.delivery import email_sender, loop, mailer, webhook_http, webhook_sender
from server.domain import recordings
from server.storage.recording_files import FilesystemStorage, Storage


def networks(*specs: str) -> tuple[webhook_http.IpNetwork, ...]:
    return tuple(ipaddress.ip_network(spec) for spec in specs)


def email_loop(
    mail: mailer.Mailer,
    *,
    rand: Callable[[], float] | None = None,
    links: recordings.DownloadLinks | None = None,
    **options: Any,
) -> loop.DeliveryLoop:
    """A loop that sends email only (webhook rows are left alone). Without `links`, the
    recording-done email's links point at recordings no test stores."""
    unused = recordings.DownloadLinks(FilesystemStorage(Path("unused")), "http://127.0.0.1:9", 60)
    channel = email_sender.EmailChannel(mail, links or unused, rand=rand or random.random)
    return loop.DeliveryLoop([channel], **options)


def full_loop(
    mail: mailer.Mailer,
    *,
    base_url: str,
    storage: Storage,
    allowed: tuple[webhook_http.IpNetwork, ...],
    rand: Callable[[], float] | None = None,
    timeout: float = webhook_http.TIMEOUT_SECONDS,
    **options: Any,
) -> loop.DeliveryLoop:
    """A loop with both channels, as every server process runs it."""
    pick = rand or random.random
    links = recordings.DownloadLinks(storage, base_url, 3600)
    webhook = webhook_sender.WebhookChannel(
        links=links, allowed_networks=allowed, timeout=timeout, rand=pick
    )
    email = email_sender.EmailChannel(mail, links, rand=pick)
    return loop.DeliveryLoop([email, webhook], **options)
