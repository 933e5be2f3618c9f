"""List requests (read-only) in every form the SDKs send, over three meetings made once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def three(gateway: Gateway, module_accounts: dict[str, Account]) -> list[dict[str, Any]]:
    """Three meetings of the host, starting at 1000, 2000 and 3000; the second is scheduled."""
    token = module_accounts["host"].token
    return [
        create_meeting(gateway, token, start_date=1000, end_date=5000),
        create_meeting(gateway, token, start_date=2000, end_date=5000, scheduled=True),
        create_meeting(gateway, token, start_date=3000, end_date=6000),
    ]


def ids(reply_json: list[dict[str, Any]]) -> list[str]:
    return [m["_id"] for m in reply_json]


def test_dart_sdk_style_requests(
    gateway: Gateway, module_accounts: dict[str, Account], three: list[dict[str, Any]]
) -> None:
    """Flat bracket keys in the query, booleans as strings, Content-Type: json on a GET."""
    token = module_accounts["host"].token
    listed = gateway.call(
        "GET", "/meetings?start_date[gte]=2000&scheduled=true", token=token, headers=JSON
    )
    assert (listed.status, ids(listed.json())) == (200, [three[1]["_id"]])

    paged = gateway.call(
        "GET", "/meetings?limit=1&offset=1", token=token,
        headers=JSON | {"CB-Api-Version": "2"},
    )  # fmt: skip
    assert paged.status == 200
    page = paged.json()
    assert {k: v for k, v in page.items() if k != "items"} == {
        "limit": 1, "skip": 1, "total_entries": 3,
    }  # fmt: skip
    assert len(page["items"]) == 1 and page["items"][0]["_id"] in ids(three)
    # With the paged header, _id is a filter of the page.
    by_id = gateway.call(
        "GET", f"/meetings?_id={three[0]['_id']}", token=token, headers={"CB-Api-Version": "2"}
    )
    assert by_id.json()["total_entries"] == 1 and ids(by_id.json()["items"]) == [three[0]["_id"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("start_date=2000", [1]),
        ("start_date[eq]=2000", [1]),
        ("start_date.gt=1000", [1, 2]),
        ("start_date[gt]=1000&start_date[lt]=3000", [1]),
        ("start_date[lte]=2000&end_date[ne]=6000", [0, 1]),
        ("end_date[gte]=6000", [2]),
        ("start_date[in]=1000,3000", [0, 2]),
        ("start_date[in]=1000%2C3000", [0, 2]),
        ("start_date[in][]=1000&start_date[in][]=3000", [0, 2]),
        ("start_date%5Bin%5D%5B%5D=1000&start_date%5Bin%5D%5B%5D=3000", [0, 2]),
        ("start_date[nin]=1000,3000", [1]),
        ("start_date[nin][]=1000&start_date[nin][]=2000", [2]),
        ("created_at[gt]=2021-02-19T10:26:49.013Z&scheduled=false", [0, 2]),
        ("updated_at[lt]=2021-02-19T10:26:49.013Z", []),
        ("created_at[lt]=2999-01-01T00:00:00Z&limit=2", [0, 1]),
        ("limit=2&offset=2", [2]),
    ],
)
def test_list_filters(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    three: list[dict[str, Any]],
    params: str,
    expected: list[int],
) -> None:
    reply = gateway.call("GET", f"/meetings?{params}", token=module_accounts["host"].token)
    assert reply.status == 200
    assert sorted(ids(reply.json())) == sorted(three[i]["_id"] for i in expected)


def test_in_and_nin_on_timestamps_in_both_encodings(
    gateway: Gateway, module_accounts: dict[str, Account], three: list[dict[str, Any]]
) -> None:
    token = module_accounts["host"].token
    first, last = three[0]["created_at"], three[2]["created_at"]
    for params in (
        f"created_at[in]={first},{last}",
        f"created_at[in][]={first}&created_at[in][]={last}",
    ):
        reply = gateway.call("GET", f"/meetings?{params}", token=token)
        assert sorted(ids(reply.json())) == sorted([three[0]["_id"], three[2]["_id"]]), params
    reply = gateway.call("GET", f"/meetings?created_at[nin]={first},{last}", token=token)
    assert ids(reply.json()) == [three[1]["_id"]]


def test_get_one_by_id_only(
    gateway: Gateway, module_accounts: dict[str, Account], three: list[dict[str, Any]]
) -> None:
    token = module_accounts["host"].token
    meeting = three[0]
    one = gateway.call("GET", f"/meetings?_id={meeting['_id']}", token=token)
    assert one.json() == meeting
    direct = gateway.call("GET", f"/meetings/{meeting['_id']}", token=token)
    assert direct.json() == meeting
    # Together with another parameter, _id is a filter and the reply is a list.
    listed = gateway.call("GET", f"/meetings?_id={meeting['_id']}&limit=5", token=token)
    assert listed.json() == [meeting]
    # An id with characters that are not allowed in a path segment is escaped, not routed.
    odd = gateway.call("GET", "/meetings?_id=../session", token=token)
    assert (odd.status, odd.json()) == (404, {"errors": ["The resource wasn't found"]})


def test_json_body_on_get_is_the_request(
    gateway: Gateway, module_accounts: dict[str, Account], three: list[dict[str, Any]]
) -> None:
    reply = gateway.call(
        "GET", "/meetings", token=module_accounts["host"].token,
        json_body={"start_date": {"gte": 3000}},
    )  # fmt: skip
    assert ids(reply.json()) == [three[2]["_id"]]
