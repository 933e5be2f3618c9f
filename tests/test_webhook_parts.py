"""Webhook parts on their own: Standard Webhooks signing, the address guard, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from server.delivery import webhook_http
from server.domain import webhook_settings
from tests.delivery_helpers import networks

LOOPBACK = networks("127.0.0.0/8", "::1/128")


def test_signer_reproduces_the_spec_test_vector() -> None:
    signature = webhook_http.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_verify_with_the_reference_library_for_each_secret() -> None:
    old, new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + "QUJD" * 11
    body = b'{"meeting": {}}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = webhook_http.headers([new, old], "msg_1", timestamp, body)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers) == {"meeting": {}}


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 (an address we must refuse, not one we bind)
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "localhost",
    ],
)
def test_non_public_addresses_are_refused(host: str) -> None:
    with pytest.raises(webhook_http.RefusedAddress):
        webhook_http.resolve(host, 80, ())


@pytest.mark.parametrize(
    "host",
    [
        "::127.0.0.1",  # IPv4-compatible
        "::10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 (RFC 6052) to 127.0.0.1
        "64:ff9b::a00:1",  # ... to 10.0.0.1
        "64:ff9b::5db8:d70e",  # ... even to a public IPv4 (reserved: only an allow-list admits it)
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215) to 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "100::1",  # discard-only
        "2001:db8::1",  # documentation
        "ff02::1",  # multicast
        "::",
    ],
)
def test_ipv6_forms_of_refused_addresses_are_refused(host: str) -> None:
    with pytest.raises(webhook_http.RefusedAddress):
        webhook_http.resolve(host, 80, ())
    # An allow-list for 127.0.0.0/8 does not open the IPv6 routes to it.
    with pytest.raises(webhook_http.RefusedAddress):
        webhook_http.resolve(host, 80, LOOPBACK[:1])


def test_6to4_of_a_public_address_passes() -> None:
    assert webhook_http.resolve("2002:5db8:d70e::1", 443, ()) == "2002:5db8:d70e::1"


def test_the_allow_list_lets_loopback_through_but_not_the_rest() -> None:
    assert webhook_http.resolve("127.0.0.1", 80, LOOPBACK) == "127.0.0.1"
    assert webhook_http.resolve("localhost", 80, LOOPBACK) in ("127.0.0.1", "::1")
    for host in ("10.0.0.1", "169.254.169.254"):
        with pytest.raises(webhook_http.RefusedAddress):
            webhook_http.resolve(host, 80, LOOPBACK)


def test_public_addresses_pass() -> None:
    assert webhook_http.resolve("93.184.215.14", 443, ()) == "93.184.215.14"
    assert webhook_http.resolve("2606:4700::1111", 443, ()) == "2606:4700::1111"


def test_unresolvable_hosts_are_refused() -> None:
    with pytest.raises(webhook_http.RefusedAddress, match="cannot resolve"):
        webhook_http.resolve("no-such-host.invalid", 80, ())


def test_url_form() -> None:
    assert webhook_settings.url_problems("https://hooks.example.org/x?y=1") == []
    assert webhook_settings.url_problems("ftp://x.example") == [
        "must be an http:// or https:// URL"
    ]
    assert webhook_settings.url_problems("https://u:p@x.example") == [
        "must not contain credentials"
    ]
    assert webhook_settings.url_problems("https://x.example:99999") == ["has an invalid port"]


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert webhook_http.retry_after("120") == 120.0
    assert webhook_http.retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now) == 90.0
    assert webhook_http.retry_after("soon") is None
    assert webhook_http.retry_after(None) is None
