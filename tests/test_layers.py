"""The layer rules of docs/architecture.md: `make lint` passes on the tree and fails on a planted
violation of each rule (in a copy of server/, run with the same tools and configuration)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


# How many contracts pyproject.toml declares (each test below breaks one of them).
CONTRACTS = (REPO / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "server", tree / "server", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _plant(tree: Path, module: str, line: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path: it analyses the copy.
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )


def _ruff(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "--select", "TID251", "server"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout
    assert f"{CONTRACTS} kept, 0 broken" in result.stdout
    assert _ruff(tree).returncode == 0


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "server/domain/meetings.py",
            "from server.transport import rpc",
            "Layers: transport and delivery on domain, domain on storage",
        ),
        (
            "server/storage/outbox.py",
            "from server.domain import notifications",
            "Layers: transport and delivery on domain, domain on storage",
        ),
        (
            "server/transport/convert.py",
            "from server.delivery import loop",
            "Layers: transport and delivery on domain, domain on storage",
        ),
        (
            "server/delivery/loop.py",
            "from meetings.v1 import meetings_pb2",
            "Only transport and app.py import the generated API",
        ),
        (
            "server/domain/chat.py",
            "import psycopg2",
            "Only storage talks to the database driver",
        ),
        (
            "server/domain/recordings.py",
            "import boto3",
            "Only storage talks to the object store's client",
        ),
        (
            "server/delivery/email_sender.py",
            "import jinja2",
            "Only email_templates runs templates",
        ),
        (
            "server/telemetry/metrics.py",
            "from server.storage import database",
            "Telemetry is a leaf: every layer records into it, it imports none of them",
        ),
    ],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy(tmp_path)
    _plant(tree, module, line)
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
    assert f"{CONTRACTS - 1} kept, 1 broken" in result.stdout


def test_sql_text_outside_storage_is_refused(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    _plant(
        tree,
        "server/domain/chat.py",
        'from server.storage.database import db\n\n\ndb.execute_sql("SELECT 1")',
    )
    result = _ruff(tree)
    assert result.returncode != 0
    assert "server/domain/chat.py" in result.stdout
    assert "SQL text lives in server/storage/" in result.stdout
