"""The example alert rules (deploy/prometheus/alerts.yml) under Prometheus' own rule tester:
each alert fires on the series that should fire it, with the summary an operator reads, and
stays quiet otherwise (deploy/prometheus/alerts.test.yml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import install_debian_package
from tests.observability.conftest import RULES

PROMTOOL = Path("/usr/bin/promtool")


def test_the_alert_rules_are_valid_and_fire_as_documented() -> None:
    install_debian_package("prometheus", PROMTOOL)  # Debian's package ships promtool
    checked = subprocess.run(
        [str(PROMTOOL), "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run(
        [str(PROMTOOL), "test", "rules", "alerts.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
