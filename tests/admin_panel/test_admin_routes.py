"""The admin panel's REST routes through the gateway, and compat.lua's copy of their parameters."""

from __future__ import annotations

from typing import Any

from meetings.v1 import admin_pb2
from server.domain import service_keys
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting
from tests.gateway.test_config import _lua_set


def test_the_lua_filter_knows_the_admin_search_parameters() -> None:
    search = {f.name for f in admin_pb2.SearchMeetingsRequest.DESCRIPTOR.fields}
    assert _lua_set("ADMIN_SEARCH_PARAMS") == search
    deliveries = {f.name for f in admin_pb2.ListWebhookDeliveriesRequest.DESCRIPTOR.fields}
    assert _lua_set("ADMIN_DELIVERIES_PARAMS") == deliveries
    preview = {f.name for f in admin_pb2.RenderEmailPreviewRequest.DESCRIPTOR.fields}
    assert _lua_set("ADMIN_PREVIEW_PARAMS") == preview - {"kind"}
    bodies: dict[str, Any] = {
        "EMAIL_TEMPLATE_KEYS": admin_pb2.UpdateEmailTemplateRequest,
        "EMAIL_PREVIEW_KEYS": admin_pb2.PreviewEmailRequest,
        "EMAIL_TEST_KEYS": admin_pb2.SendTestEmailRequest,
    }
    for name, message in bodies.items():
        assert _lua_set(name) == {f.name for f in message.DESCRIPTOR.fields} - {"kind"}, name


def test_search_detail_and_deliveries_over_rest(
    gateway: Gateway, accounts: dict[str, Account], db: Any
) -> None:
    admin = {"CB-Administration-API-Key": service_keys.issue(service_keys.ADMIN)}
    host = accounts["host"]
    made = create_meeting(gateway, host.token, name="Weekly sync", start_date=1613729948)
    create_meeting(gateway, host.token, name="Retro", start_date=1613729000)

    found = gateway.call(
        "GET",
        "/admin/meetings?name=weekly%20SYNC&host=host&start_from=1613729900&limit=5",
        headers=admin,
    )
    assert found.status == 200, found
    page = found.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 5, 0)
    [item] = page["items"]
    assert item["_id"] == made["_id"] and item["host_login"] == "host"
    # Numbers print as JSON numbers (no 64-bit fields).
    assert item["start_date"] == 1613729948 and item["host_id"] == host.user_id
    # The JS SDK's form: parameters in a GET body, and a .json suffix.
    form = gateway.call("GET", "/admin/meetings.json", body="name=retro", headers=admin)
    assert [i["name"] for i in form.json()["items"]] == ["Retro"]

    detail = gateway.call("GET", f"/admin/meetings/{made['_id']}", headers=admin)
    assert detail.status == 200 and detail.json()["meeting"]["_id"] == made["_id"]
    assert detail.json()["recordings"] == [] and detail.json()["call_ended_at"] == ""
    missing = gateway.call("GET", f"/admin/meetings/{'f' * 24}", headers=admin)
    assert (missing.status, missing.json()) == (404, {"errors": ["The resource wasn't found"]})

    deliveries = gateway.call("GET", "/admin/webhooks/deliveries?offset=0&limit=3", headers=admin)
    assert deliveries.json() == {"items": [], "total": 0, "limit": 3, "offset": 0}
    resend = gateway.call(
        "POST", "/admin/webhooks/deliveries/12345/resend", json_body={}, headers=admin
    )
    assert resend.status == 404

    unknown = gateway.call("GET", "/admin/meetings?name=x&owner=1", headers=admin)
    assert (unknown.status, unknown.json()) == (
        422,
        {"errors": {"owner": ["is not a supported parameter"]}},
    )
    wrong = gateway.call("GET", "/admin/webhooks/deliveries?name=x", headers=admin)
    assert wrong.status == 422
    too_many = gateway.call("GET", "/admin/meetings?limit=101", headers=admin)
    assert (too_many.status, too_many.json()) == (
        422,
        {"errors": {"limit": ["must be at most 100"]}},
    )
    for path in ("/admin/meetings", "/admin/webhooks/deliveries"):
        assert gateway.call("GET", path).status == 401
        bad = gateway.call("GET", path, headers={"CB-Administration-API-Key": "admin_x"})
        assert bad.status == 401
