"""No secret in any log of a test run (wired in by tests/conftest.py).

Every secret the service makes in the tests' process is drawn from `secrets` (session tokens,
service and application keys, signing and webhook secrets): the plugin records what those
calls return. The server's own log lines (JSON, as in production) go to a file of the run;
Envoy's, the replicas' and the other servers' logs are files in the run's temp folder. When
the run ends, every `*.log` file there is searched for every recorded secret and for the
tests' passwords and object-store key; a find fails the run, naming the file and the kind of
secret (never the secret itself). Secrets that replica processes make themselves are not
seen here, but the ones they are handed (the tests' tokens and keys) are.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from server.logs import JsonFormatter

# Random values shorter than this are names (guest logins), not credentials.
_MIN_SECRET = 20
_SEEN: dict[str, str] = {}
_LOG_FILE = "server-in-tests.log"


def remember(value: str, kind: str) -> None:
    if len(value) >= _MIN_SECRET:
        _SEEN[value] = kind


def _recording(draw: Callable[..., Any], kind: str) -> Callable[..., Any]:
    def draw_and_remember(*args: Any, **kwargs: Any) -> Any:
        value = draw(*args, **kwargs)
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        remember(text, kind)
        return value

    return draw_and_remember


def leaks(folder: Path, known: dict[str, str]) -> list[str]:
    """`file: kind` for every known secret found in a *.log file under `folder`."""
    found = []
    for log in sorted(folder.rglob("*.log")):
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        kinds = sorted({kind for value, kind in known.items() if value in text})
        found += [f"{log.relative_to(folder)}: {kind}" for kind in kinds]
    return found


def install() -> None:
    """Record every value the service draws from `secrets` from now on."""
    secrets.token_urlsafe = _recording(secrets.token_urlsafe, "a token or key")
    secrets.token_hex = _recording(secrets.token_hex, "a secret")
    secrets.token_bytes = _recording(secrets.token_bytes, "a webhook secret")


def start_log(basetemp: Path) -> None:
    """The service's log lines in this process, as JSON lines in the run's folder (INFO and
    up, as production logs them)."""
    handler = logging.FileHandler(basetemp / _LOG_FILE)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


def check(session: pytest.Session, basetemp: Path, also: Iterable[tuple[str, str]]) -> None:
    known = dict(_SEEN)
    known.update(dict(also))
    found = leaks(basetemp, known)
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("secrets found in the logs of this run:", red=True)
            for line in found:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
