"""The run-wide check for secrets in logs (tests/log_secrets.py) finds what it is meant to."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from tests import log_secrets


def test_a_secret_drawn_in_the_run_is_found_in_any_log_file() -> None:
    token = secrets.token_urlsafe(32)  # recorded, as every token the service draws
    assert log_secrets._SEEN[token] == "a token or key"
    # Outside the run's folder, which the run-wide check searches.
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "envoy").mkdir()
        (folder / "envoy" / "envoy.log").write_text(f'{{"path": "/x", "token": "{token}"}}\n')
        (folder / "clean.log").write_text("nothing to see\n")
        (folder / "notes.txt").write_text(token)  # not a log
        assert log_secrets.leaks(folder, {token: "a token or key"}) == [
            "envoy/envoy.log: a token or key"
        ]
