"""The recordings a recording-done email lists, with links made when it is rendered.

Its links last the meetings setting's days (`recording_link_days`), not the API's hour: an
email is read later than a list is fetched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from server.domain import emails, recordings

TOPIC = "recording_done"


def links_for(
    recording_ids: Sequence[str], links: recordings.DownloadLinks, days: int
) -> list[emails.RecordingLink]:
    """The recordings among `recording_ids` that still exist, each with a link for `days`."""
    found = recordings.by_ids(list(recording_ids))
    lasting = dataclasses.replace(links, ttl_seconds=days * 86400)
    return [
        emails.RecordingLink(
            recordings.file_name(view.file_uid, view.content_type),
            url,
            view.size_mb,
            view.duration,
        )
        for view, url in zip(found, lasting.urls(found), strict=True)
    ]
