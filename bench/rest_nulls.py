"""What the gateway's REST nulls cost per request (gateway/compat.lua, meeting_nulls).

protos/ types a meeting's chat_dialog_id, notify_before and timezone; REST prints them as null
when a meeting has none, which the gateway does on every reply that holds meetings. Here that
function, lifted from compat.lua as it is, runs in LuaJIT (the Lua that Envoy embeds) on the
bench's own REST replies: one meeting, and the listed page. The figure is CPU time per reply;
a reply that holds meetings is also buffered whole before it goes out (lists included), which
the REST get and list rows of the request-path table already carry.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.grpc_load import Workload

COMPAT = Path(__file__).resolve().parent.parent / "gateway" / "compat.lua"
CALLS = 20000

_TIMER = """
local function time_it(text)
  local started = os.clock()
  for _ = 1, %d do meeting_nulls(text) end
  return (os.clock() - started) / %d * 1e6
end
local one = io.open(arg[1], "rb"):read("*a")
local list = io.open(arg[2], "rb"):read("*a")
print(string.format("%%.3f %%.3f", time_it(one), time_it(list)))
"""


def _function() -> str:
    """meeting_nulls' source, as compat.lua has it (up to its closing `end`)."""
    match = re.search(r"^local function meeting_nulls\(text\)\n.*?^end\n", COMPAT.read_text(),
                      re.MULTILINE | re.DOTALL)  # fmt: skip
    assert match, "compat.lua has no meeting_nulls"
    return match.group(0)


def _get(gateway: str, path: str, token: str) -> bytes:
    host, port = gateway.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers={"CB-Token": token})
        reply = connection.getresponse()
        body = reply.read()
        assert reply.status == 200, (path, reply.status, body[:200])
        return body
    finally:
        connection.close()


def measure(gateway: str, work: Workload) -> dict[str, Any]:
    """µs of CPU per reply for one meeting and for the listed page (LuaJIT, CALLS each)."""
    luajit = shutil.which("luajit")
    if luajit is None:
        return {"skipped": "luajit is not installed (make bench installs it as root)"}
    one = _get(gateway, f"/meetings/{work.meeting_ids[0]}", work.token)
    listed = _get(
        gateway, f"/meetings?start_date[gte]={work.list_gte}&start_date[lt]={work.list_lt}",
        work.token,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / name for name in ("timer.lua", "one.json", "list.json")]
        files[0].write_text(_function() + _TIMER % (CALLS, CALLS))
        files[1].write_bytes(one)
        files[2].write_bytes(listed)
        out = subprocess.run(  # noqa: S603 (LuaJIT with our script)
            [luajit, *map(str, files)], capture_output=True, text=True, timeout=120, check=True
        ).stdout.split()
    return {
        "calls": CALLS,
        "one_meeting_us": float(out[0]),
        "one_meeting_bytes": len(one),
        "list_us": float(out[1]),
        "list_bytes": len(listed),
        "list_meetings": listed.count(b'"_id":'),
    }


def render(found: dict[str, Any], get_p50_ms: float, list_p50_ms: float) -> list[str]:
    if "skipped" in found:
        return [f"REST nulls (compat.lua meeting_nulls): {found['skipped']}"]
    one, listed = found["one_meeting_us"], found["list_us"]
    return [
        "REST nulls (compat.lua meeting_nulls, LuaJIT, "
        f"{found['calls']:,} calls): {one:.1f} µs per meeting reply ({found['one_meeting_bytes']}"
        f" B; {one / 1000 / get_p50_ms:.2%} of REST get's p50), {listed:.1f} µs per list of "
        f"{found['list_meetings']} ({found['list_bytes']} B; {listed / 1000 / list_p50_ms:.2%} "
        "of REST list's p50)"
    ]
