"""The Go stubs of `make stubs` build and vet against grpc-go, as a Go team would use them.

Debian's Go 1.19 and its packaged grpc-go, google.golang.org/protobuf and genproto (the module
proxy is out of reach), in GOPATH mode: the stubs are put where their go_package says.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.clients.conftest import STUBS
from tests.conftest import install_debian_package

GO_PACKAGE = "github.com/meetings-api/meetings-api/gen/go/meetings/v1"
DEBIAN_GOPATH = Path("/usr/share/gocode")
# Each package with a file it installs.
PACKAGES = {
    "golang-go": Path("/usr/bin/go"),
    "golang-google-grpc-dev": DEBIAN_GOPATH / "src/google.golang.org/grpc/server.go",
    "golang-google-protobuf-dev": DEBIAN_GOPATH / "src/google.golang.org/protobuf/go.mod",
    "golang-google-genproto-dev": DEBIAN_GOPATH
    / "src/google.golang.org/genproto/googleapis/api/annotations/http.pb.go",
}
GO_TIMEOUT = 300.0  # seconds; about 10 s on an idle 2-core machine


def test_the_go_stubs_build_and_vet(tmp_path: Path) -> None:
    for package, installed in PACKAGES.items():
        install_debian_package(package, installed)
    gopath = tmp_path / "gopath"
    where = gopath / "src" / GO_PACKAGE
    where.parent.mkdir(parents=True)
    where.symlink_to(STUBS / "go" / "meetings" / "v1")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}{os.pathsep}{DEBIAN_GOPATH}",
        "GOCACHE": str(tmp_path / "cache"),
        "GOFLAGS": "",
    }
    for command in (["go", "build", GO_PACKAGE], ["go", "vet", GO_PACKAGE]):
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=GO_TIMEOUT, check=False
        )
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    services = (where / "meetings_grpc.pb.go").read_text()
    assert "func NewMeetingServiceClient(cc grpc.ClientConnInterface)" in services
    assert "GetNotifyBefore() *NotifyBefore" in (where / "meetings.pb.go").read_text()
