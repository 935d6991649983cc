"""Access-Request decisions: identification order, passwords, and the status/funds table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Network, ip_network
from pathlib import Path

import pytest
from pyrad.client import Client
from pyrad.dictionary import Dictionary

from aaa import codec
from aaa.auth_methods import Credential
from aaa.authorize import authorize
from aaa.dictionary import load_dictionaries
from aaa.identification import IdentificationPlan, Option82Attributes, PortKey
from aaa.settings import AaaSettings, CategoryPolicy, NasClient
from aaa.vendor_profiles import SpeedProfile, renderer_for

DICTIONARIES = Path(__file__).resolve().parents[2] / "conf" / "dictionaries"
SECRET = b"testing123"
RADIUS = load_dictionaries(DICTIONARIES)
PYRAD = Dictionary(str(DICTIONARIES / "dictionary"))
OPTION82 = Option82Attributes.from_dictionary(RADIUS)
CLIENT = NasClient("bras1", ip_network("127.0.0.1/32"), SECRET, vendor="mikrotik")
PLAN = IdentificationPlan()
RENDERER = renderer_for("mikrotik", RADIUS)
SETTINGS = AaaSettings(nas=(CLIENT,), policies=(("business", CategoryPolicy(out_of_funds="reject")),))
RATE_LIMIT = (14988, 8)
PASSWORD = Credential.cleartext("secret")
HOME_100 = SpeedProfile("home-100", 100_000, 20_000)


@dataclass(frozen=True)
class Sub:
    service_id: int
    status: str = "active"
    category: str = "residential"
    available: Decimal = Decimal(10)
    credential: Credential | None = PASSWORD
    profile: SpeedProfile | None = HOME_100
    framed_ip: IPv4Address | None = None
    framed_pool: str | None = "main"
    ipv6_prefix: IPv6Network | None = None
    delegated_prefix: IPv6Network | None = None
    simultaneous_use: int | None = None


@dataclass
class Directory:
    logins: dict[str, Sub]
    macs: dict[str, Sub]
    ports: dict[PortKey, Sub]

    def by_login(self, login: str) -> Sub | None:
        return self.logins.get(login)

    def by_mac(self, mac: str) -> Sub | None:
        return self.macs.get(mac)

    def by_port(self, port: PortKey) -> Sub | None:
        return self.ports.get(port)


def _request(**attributes: object) -> codec.RadiusPacket:
    client = Client(server="127.0.0.1", secret=SECRET, dict=PYRAD)
    packet = client.CreateAuthPacket(code=1)
    password = attributes.pop("password", None)
    for name, value in attributes.items():
        packet[name.replace("_", "-")] = value
    if password is not None:
        packet["User-Password"] = packet.PwCrypt(password)
    packet.add_message_authenticator()
    return codec.decode(packet.RequestPacket())


def _decide(directory: Directory, request: codec.RadiusPacket):  # type: ignore[no-untyped-def]
    return authorize(request, CLIENT, PLAN, OPTION82, directory, RENDERER, SETTINGS)


def _rate(verdict) -> bytes | None:  # type: ignore[no-untyped-def]
    return next((a[2] for a in verdict.attributes if a[:2] == RATE_LIMIT), None)


def _message(verdict) -> bytes | None:  # type: ignore[no-untyped-def]
    return next((a[1] for a in verdict.attributes if a[0] == 18), None)


def test_pppoe_login_with_right_password_is_accepted_with_its_speed() -> None:
    directory = Directory({"anna": Sub(1)}, {}, {})
    verdict = _decide(directory, _request(User_Name="anna", password="secret"))
    assert verdict.accept and verdict.outcome == "accept" and verdict.service_id == 1
    assert _rate(verdict) == b"20M/100M"
    assert (25, b"svc:1") in verdict.attributes  # Class, echoed in accounting


def test_wrong_password_is_rejected() -> None:
    directory = Directory({"anna": Sub(1)}, {}, {})
    verdict = _decide(directory, _request(User_Name="anna", password="guess"))
    assert not verdict.accept and verdict.outcome == "auth_bad_password"


def test_unknown_subscriber_is_rejected_with_a_reply_message() -> None:
    verdict = _decide(Directory({}, {}, {}), _request(User_Name="nobody", password="x"))
    assert not verdict.accept and verdict.outcome == "unknown" and _message(verdict) == b"unknown subscriber"


def test_ipoe_by_mac_needs_no_password() -> None:
    directory = Directory({}, {"aa:bb:cc:dd:ee:ff": Sub(2)}, {})
    verdict = _decide(directory, _request(User_Name="AABB.CCDD.EEFF", Calling_Station_Id="AA-BB-CC-DD-EE-FF"))
    assert verdict.accept and verdict.service_id == 2


def test_login_is_tried_before_mac_per_plan() -> None:
    directory = Directory({"anna": Sub(1)}, {"aa:bb:cc:dd:ee:ff": Sub(2)}, {})
    verdict = _decide(
        directory, _request(User_Name="anna", password="secret", Calling_Station_Id="aa:bb:cc:dd:ee:ff")
    )
    assert verdict.service_id == 1


@pytest.mark.parametrize(
    ("change", "accept", "outcome"),
    [
        ({"available": Decimal("-0.01")}, True, "walled_garden_out_of_funds"),
        ({"available": Decimal("-0.01"), "category": "business"}, False, "out_of_funds"),
        ({"available": Decimal(0)}, True, "accept"),
        ({"status": "suspended_voluntary"}, True, "walled_garden_suspended"),
        ({"status": "suspended_involuntary"}, True, "walled_garden_suspended"),
        ({"status": "blocked"}, False, "blocked"),
        ({"status": "churned"}, False, "churned"),
        ({"status": "pending"}, False, "not_active"),
        ({"profile": None}, False, "no_profile"),
        ({"credential": None}, False, "bad_credential"),
    ],
)
def test_status_and_funds_table(change: dict[str, object], accept: bool, outcome: str) -> None:
    directory = Directory({"anna": replace(Sub(1), **change)}, {}, {})  # type: ignore[arg-type]
    verdict = _decide(directory, _request(User_Name="anna", password="secret"))
    assert (verdict.accept, verdict.outcome) == (accept, outcome)
    if outcome.startswith("walled_garden"):
        assert _rate(verdict) == b"512k/512k"
        assert (88, b"captive") in verdict.attributes  # Framed-Pool of the captive portal


def test_fixed_address_wins_over_the_pool() -> None:
    directory = Directory({"anna": replace(Sub(1), framed_ip=IPv4Address("100.64.0.7"))}, {}, {})
    verdict = _decide(directory, _request(User_Name="anna", password="secret"))
    assert (8, IPv4Address("100.64.0.7").packed) in verdict.attributes
    assert not any(a[0] == 88 for a in verdict.attributes)
