"""The stock ConnectyCube JS SDK (npm `connectycube`, pinned in package-lock.json) against the
real Envoy and server (the tests/gateway fixtures), in Node and in headless Chromium.

A test runs a scenario of scenarios/ with `sdk.run(runtime, name, args)`: `node run.mjs` in a
subprocess, which either calls the SDK in Node or drives page.html in Chromium, served by
`page_server` on another loopback port than the gateway's, so the browser's calls are
cross-origin (real CORS, real preflights). Every wait is bounded. The requests each run made
are printed as a table (`pytest -s` shows it).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from server.domain import applications
from tests.conftest import Account, install_debian_package, make_account
from tests.gateway.conftest import Gateway, _lua_errors_stay_zero, gateway  # noqa: F401

SDK_DIR = Path(__file__).resolve().parent
NODE_MODULES = SDK_DIR / "node_modules"
SDK_VERSION = "6.1.2"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", DEFAULT_CHROMIUM))
RUNTIMES = ["node", "chromium"]
PASSWORD = "correct horse battery"  # make_account's default
RUN_TIMEOUT = 40.0  # seconds for one scenario, a browser start included

# What page.html loads, by URL path; nothing else is served.
PAGE_FILES = {
    "/page.html": SDK_DIR / "page.html",
    "/connectycube.min.js": NODE_MODULES / "connectycube" / "dist" / "connectycube.min.js",
    "/gen/grpc-web.js": SDK_DIR / "gen" / "grpc-web.js",
} | {f"/scenarios/{p.name}": p for p in (SDK_DIR / "scenarios").glob("*.js")}

Step = Callable[[str, Any], Any]
REQUIRED = {"errors": {"base": ["Required session does not exist"]}}


@dataclass
class Run:
    runtime: str
    result: dict[str, Any]
    requests: list[dict[str, Any]]
    console: list[str]
    steps: list[str] = field(default_factory=list)


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = PAGE_FILES.get(self.path.split("?", 1)[0])
        if path is None:
            self.send_error(404)
            return
        body = path.read_bytes()
        kind = "text/html" if path.suffix == ".html" else "text/javascript"
        self.send_response(200)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the request table is what a reader wants


@pytest.fixture(scope="session")
def page_server() -> Iterator[str]:
    """The scenario page's origin: a loopback port of its own, not the gateway's."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@functools.cache
def _check_setup() -> None:
    """The pinned SDK, installed by `make test` (npm ci in tests/sdk)."""
    manifest = NODE_MODULES / "connectycube" / "package.json"
    if not manifest.exists():
        pytest.fail(f"{NODE_MODULES} is missing: `make test` installs it (npm ci)")
    assert json.loads(manifest.read_text())["version"] == SDK_VERSION


@functools.cache
def _check_chromium() -> None:
    # Debian's chromium (never a browser download of Playwright's own); `make test` installs
    # it, and so does this for a plain pytest run, as the admin panel's tests do.
    if str(CHROMIUM) == DEFAULT_CHROMIUM:
        install_debian_package("chromium", CHROMIUM)
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM} (CHROMIUM_PATH)")


class Sdk:
    def __init__(self, base: str, page_url: str, app: applications.Credentials) -> None:
        self.base, self.page_url, self.app = base, page_url, app

    def run(
        self, runtime: str, scenario: str, args: dict[str, Any], on_step: Step | None = None
    ) -> Run:
        """Runs a scenario in `runtime` (node or chromium); `on_step(name, data)` answers the
        scenario's steps. Prints the requests the SDK made."""
        _check_setup()
        command = ["node", str(SDK_DIR / "run.mjs"), scenario]
        credentials = {"appId": self.app.id, "authKey": self.app.auth_key}
        command.append(json.dumps(credentials | {"base": self.base} | args))
        if runtime == "chromium":
            _check_chromium()
            command += ["--browser", f"{self.page_url}/page.html"]
        env = os.environ | {"CHROMIUM_PATH": str(CHROMIUM)}
        run = _drive(runtime, command, env, on_step or _no_steps)
        print_requests(f"{scenario} ({runtime})", run.requests)
        return run


def _no_steps(name: str, data: Any) -> Any:
    raise AssertionError(f"unexpected step {name!r}")


def _drive(runtime: str, command: list[str], env: dict[str, str], on_step: Step) -> Run:
    """Runs the runner, answering its steps, until its final line (at most RUN_TIMEOUT)."""
    # stderr to a file: a chatty runner can never block on a full pipe.
    errors = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
        text=True, env=env, cwd=SDK_DIR,
    )  # fmt: skip
    assert process.stdin and process.stdout
    lines = _lines_of(process.stdout)
    steps: list[str] = []
    try:
        while True:
            line = lines.get(timeout=RUN_TIMEOUT)
            if line is None:
                process.wait(timeout=5)
                pytest.fail(f"runner exited {process.returncode}: {_read(errors)}")
            message = json.loads(line)
            if "step" not in message:
                return Run(
                    runtime, message["result"], message["requests"], message["console"], steps
                )
            steps.append(message["step"])
            reply = on_step(message["step"], message["data"])
            process.stdin.write(json.dumps(reply) + "\n")
            process.stdin.flush()
    except queue.Empty:
        pytest.fail(f"{command[2]} gave no answer in {RUN_TIMEOUT} s: {_read(errors)}")
    finally:
        process.kill()
        process.wait(timeout=5)
        errors.close()


def _read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()[-4000:]


def _lines_of(stream: IO[str]) -> queue.Queue[str | None]:
    """A stream's lines, read by a thread (so that waiting for one can time out); None at EOF."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.fixture
def host(db: Any) -> Account:
    """One user with a password (each account costs an Argon2 hash: most tests need one)."""
    return make_account("host", "host@example.com", PASSWORD)


@pytest.fixture
def sdk(gateway: Gateway, page_server: str, db: Any) -> Sdk:  # noqa: F811
    """Runs scenarios with the application's credentials (as an app is configured), on an
    emptied database."""
    return Sdk(gateway.base, page_server, applications.current())


# Headers of the transport, not of the SDK: left out of the table.
_TRANSPORT_HEADERS = {
    "host", "connection", "content-length", "accept", "accept-encoding", "accept-language",
    "user-agent", "referer", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform",
    "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
}  # fmt: skip
_SECRET_HEADERS = {"cb-token"}


def print_requests(title: str, requests: list[dict[str, Any]]) -> None:
    print(f"\nSDK requests, {title}:")
    for request in requests:
        headers = [
            f"{name}: {'<token>' if name.lower() in _SECRET_HEADERS else value}"
            for name, value in request["headers"].items()
            if name.lower() not in _TRANSPORT_HEADERS
        ]
        status = request["status"] or request.get("failure")
        print(f"  {request['method']:<7} {request['path']:<52} {status}  {'; '.join(headers)}")


def ok(outcome: dict[str, Any]) -> Any:
    """The value of an SDK call that must have succeeded."""
    assert outcome["ok"], outcome
    return outcome["value"]


def refused(outcome: dict[str, Any]) -> tuple[int, Any]:
    """(status, body) of an SDK call that must have failed with a response."""
    assert not outcome["ok"] and "error" not in outcome, outcome
    return outcome["code"], outcome["info"]


def assert_answered(run: Run, own_fetches: int = 0) -> None:
    """Every request reached us and was answered: in the browser, after CORS preflights that
    allowed the SDK's own headers, with no CORS error in the console. All were the SDK's but
    the last `own_fetches`, which the scenario made itself."""
    assert run.requests and all(r["status"] for r in run.requests), run.requests
    calls = [r for r in run.requests if r["method"] != "OPTIONS"]
    sdk_calls = calls[: len(calls) - own_fetches]
    assert all(_header(r, "cb-sdk") == f"JS {SDK_VERSION} - Client" for r in sdk_calls), sdk_calls
    assert not any(_header(r, "cb-sdk") for r in calls[len(sdk_calls) :]), calls
    if run.runtime == "chromium":
        preflights = [r for r in run.requests if r["method"] == "OPTIONS"]
        assert preflights and all(r["status"] == 200 for r in preflights), preflights
        assert "cb-sdk" in _header(preflights[0], "access-control-request-headers")
        assert not [m for m in run.console if "CORS" in m or "Access-Control" in m], run.console


def _header(request: dict[str, Any], name: str) -> str:
    return next((v for k, v in request["headers"].items() if k.lower() == name), "")


def rows(db: Any, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(db.execute_sql(query, params).fetchall())
