"""Tests of aaa.vendor_profiles: each vendor's attributes decoded back through the shipped
dictionaries, rate formats and bursts, omitted fields, IPv6 prefixes, the registry, the
caches, and a whole Access-Accept verified by pyrad."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import codec
from aaa.codec import Attribute, Code
from aaa.dictionary import RadiusDictionary, compile_dictionary, load_dictionaries
from aaa.vendor_profiles import (
    RENDERERS,
    Authorization,
    CiscoRenderer,
    InvalidProfile,
    MikrotikRenderer,
    MissingAttribute,
    SpeedProfile,
    UnknownVendor,
    VendorProfileError,
    format_junos_rate,
    format_mikrotik_rate,
    renderer_for,
    supported_vendors,
)

DICTIONARIES = Path(__file__).parents[2] / "conf" / "dictionaries"
SECRET = b"testing123"

GOLD = SpeedProfile("gold", down_kbps=50_000, up_kbps=10_000)
BURSTY = SpeedProfile(
    "turbo",
    down_kbps=50_000,
    up_kbps=10_000,
    burst_down_kbps=80_000,
    burst_up_kbps=15_000,
    burst_threshold_kbps=8_000,
    burst_time_s=10,
)
# the walled garden: nothing special, just small and in the captive-portal pool
NEGATIVE_BALANCE = Authorization(
    SpeedProfile("negative-balance", down_kbps=256, up_kbps=128),
    framed_pool="captive-portal",
    address_list="negative-balance",
    session_timeout_s=3600,
)
FULL = Authorization(
    GOLD,
    framed_ip=IPv4Address("100.64.0.5"),
    ipv6_prefix=IPv6Network("2001:db8:0:1::/64"),
    delegated_prefix=IPv6Network("2001:db8:100::/56"),
    ipv6_pool="v6-pd",
    session_timeout_s=86_400,
    interim_interval_s=300,
    class_=b"\x01sub-42",
    idle_timeout_s=600,
    address_list="active",
)

RFC_DECODED = [
    ("Framed-IP-Address", IPv4Address("100.64.0.5")),
    ("Framed-IPv6-Prefix", IPv6Network("2001:db8:0:1::/64")),
    ("Delegated-IPv6-Prefix", IPv6Network("2001:db8:100::/56")),
    ("Framed-IPv6-Pool", "v6-pd"),
]
RFC_TIMERS = [
    ("Session-Timeout", 86_400),
    ("Idle-Timeout", 600),
    ("Acct-Interim-Interval", 300),
    ("Class", b"\x01sub-42"),
]


@pytest.fixture(scope="module")
def dictionary() -> RadiusDictionary:
    return load_dictionaries(DICTIONARIES)


def decoded(dictionary: RadiusDictionary, attributes: tuple[Attribute, ...]) -> list[tuple[str, object]]:
    """(name, value) through the dictionary, as the NAS would read them; tags split off."""
    out: list[tuple[str, object]] = []
    for attr in attributes:
        key = attr[0] if len(attr) == 2 else (attr[0], attr[1])
        definition = dictionary.lookup(key)  # type: ignore[arg-type]
        assert definition is not None, f"{key} is not in the dictionary"
        raw = attr[-1]
        assert isinstance(raw, bytes)
        if definition.has_tag:
            tag, value = codec.decode_tagged(definition.data_type, raw)
            assert codec.encode_value(definition.data_type, value, tag=tag or None) == raw
            out.append((f"{definition.name}:{tag}", value))
        else:
            value = codec.decode_value(definition.data_type, raw)
            # the renderer's fast encoders agree with the codec's reference encoder
            assert codec.encode_value(definition.data_type, value) == raw
            out.append((definition.name, value))
    return out


# --------------------------------------------------------------------------- per vendor


def test_generic_sends_only_the_rfc_attributes(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("generic", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("Delegated-IPv6-Prefix-Pool", "v6-pd"),
        *RFC_TIMERS,
    ]
    assert all(len(a) == 2 for a in attrs)


def test_mikrotik_rate_limit_is_upload_slash_download(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("mikrotik", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("Mikrotik-Delegated-IPv6-Pool", "v6-pd"),
        *RFC_TIMERS,
        ("Mikrotik-Rate-Limit", "10M/50M"),
        ("Mikrotik-Address-List", "active"),
    ]
    assert (14988, 8, b"10M/50M") in attrs


def test_mikrotik_walled_garden(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("mikrotik", dictionary).render(NEGATIVE_BALANCE)
    assert decoded(dictionary, attrs) == [
        ("Framed-Pool", "captive-portal"),
        ("Session-Timeout", 3600),
        ("Mikrotik-Rate-Limit", "128k/256k"),
        ("Mikrotik-Address-List", "negative-balance"),
    ]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (GOLD, "10M/50M"),
        (SpeedProfile("odd", down_kbps=1500, up_kbps=512), "512k/1500k"),
        (SpeedProfile("gig", down_kbps=1_000_000, up_kbps=1_000_000), "1000M/1000M"),
        (BURSTY, "10M/50M 15M/80M 8M/8M 10/10"),
        # a burst rate alone: RouterOS takes the rate as threshold and 1 s as time
        (SpeedProfile("b", down_kbps=20_000, up_kbps=5_000, burst_down_kbps=40_000), "5M/20M 5M/40M"),
        (
            SpeedProfile("t", down_kbps=20_000, up_kbps=5_000, burst_up_kbps=7_500, burst_time_s=16),
            "5M/20M 7500k/20M 5M/20M 16/16",
        ),
        (
            SpeedProfile(
                "h", down_kbps=2_000, up_kbps=1_000, burst_down_kbps=4_000, burst_threshold_kbps=1_500
            ),
            "1M/2M 1M/4M 1500k/1500k",
        ),
    ],
)
def test_mikrotik_rate_limit_formats(profile: SpeedProfile, expected: str) -> None:
    assert MikrotikRenderer.rate_limit(profile) == expected


def test_cisco_policy_mode_is_the_default(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("cisco", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("Delegated-IPv6-Prefix-Pool", "v6-pd"),
        *RFC_TIMERS,
        ("Cisco-AVPair", "subscriber:sub-qos-policy-in=gold-in"),
        ("Cisco-AVPair", "subscriber:sub-qos-policy-out=gold-out"),
    ]


def test_cisco_policy_templates(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("cisco", dictionary, policy_in="UP_{up_kbps}K", policy_out="DOWN_{down_kbps}K")
    assert decoded(dictionary, renderer.speed_attributes(GOLD)) == [
        ("Cisco-AVPair", "subscriber:sub-qos-policy-in=UP_10000K"),
        ("Cisco-AVPair", "subscriber:sub-qos-policy-out=DOWN_50000K"),
    ]


def test_cisco_rate_mode_is_car_in_bits_per_second(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("cisco", dictionary, mode="rate")
    assert decoded(dictionary, renderer.render(NEGATIVE_BALANCE)) == [
        ("Framed-Pool", "captive-portal"),
        ("Session-Timeout", 3600),
        (
            "Cisco-AVPair",
            "lcp:interface-config#1=rate-limit input 128000 24000 48000 "
            "conform-action transmit exceed-action drop",
        ),
        (
            "Cisco-AVPair",
            "lcp:interface-config#2=rate-limit output 256000 48000 96000 "
            "conform-action transmit exceed-action drop",
        ),
    ]
    # normal burst = 1.5 s of traffic in bytes, as in Cisco's CAR guidance
    assert CiscoRenderer.car("output", 15_000, 1).split()[3:5] == ["2812500", "5625000"]


def test_juniper_service_activate_is_tagged_down_up(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("juniper", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("ERX-IPv6-Delegated-Pool-Name", "v6-pd"),
        *RFC_TIMERS,
        ("ERX-Service-Activate:1", "internet(50m,10m)"),
    ]
    assert attrs[-1] == (4874, 65, b"\x01internet(50m,10m)")


def test_juniper_service_name_and_policy_mode(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("juniper", dictionary, service="svc-rate")
    assert decoded(dictionary, renderer.speed_attributes(NEGATIVE_BALANCE.profile)) == [
        ("ERX-Service-Activate:1", "svc-rate(256k,128k)")
    ]
    policy = renderer_for("juniper", dictionary, mode="policy", ingress_policy="{name}_UP")
    assert decoded(dictionary, policy.speed_attributes(GOLD)) == [
        ("ERX-Ingress-Policy-Name", "gold_UP"),
        ("ERX-Egress-Policy-Name", "gold-out"),
    ]


def test_huawei_rates_are_bits_per_second_input_is_upload(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("huawei", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("Huawei-Delegated-IPv6-Prefix-Pool", "v6-pd"),
        *RFC_TIMERS,
        ("Huawei-Input-Average-Rate", 10_000_000),
        ("Huawei-Output-Average-Rate", 50_000_000),
    ]


def test_huawei_bursts_are_peak_rates(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("huawei", dictionary)
    assert decoded(dictionary, renderer.speed_attributes(BURSTY)) == [
        ("Huawei-Input-Average-Rate", 10_000_000),
        ("Huawei-Output-Average-Rate", 50_000_000),
        ("Huawei-Input-Peak-Rate", 15_000_000),
        ("Huawei-Output-Peak-Rate", 80_000_000),
    ]
    with pytest.raises(InvalidProfile, match="32-bit"):
        renderer.render(Authorization(SpeedProfile("10g", down_kbps=10_000_000, up_kbps=1_000)))


def test_accel_ppp_filter_id_is_down_slash_up_kbps(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("accel-ppp", dictionary).render(FULL)
    assert decoded(dictionary, attrs) == [
        *RFC_DECODED,
        ("Delegated-IPv6-Prefix-Pool", "v6-pd"),
        *RFC_TIMERS,
        ("Filter-Id", "50000/10000"),
    ]
    assert attrs[-1] == (11, b"50000/10000")
    other = renderer_for("accel-ppp", dictionary, rate_attribute="Mikrotik-Rate-Limit")
    assert other.speed_attributes(GOLD) == ((14988, 8, b"50000/10000"),)


# --------------------------------------------------------------------------- common behaviour


@pytest.mark.parametrize("vendor", sorted(RENDERERS))
def test_missing_optional_fields_are_omitted(dictionary: RadiusDictionary, vendor: str) -> None:
    renderer = renderer_for(vendor, dictionary)
    attrs = renderer.render(Authorization(GOLD))
    assert attrs == renderer.speed_attributes(GOLD)
    names = {name for name, _ in decoded(dictionary, attrs)}
    assert not names & {
        "Framed-IP-Address",
        "Framed-Pool",
        "Framed-IPv6-Prefix",
        "Delegated-IPv6-Prefix",
        "Session-Timeout",
        "Idle-Timeout",
        "Acct-Interim-Interval",
        "Class",
        "Mikrotik-Address-List",
    }


@pytest.mark.parametrize("vendor", sorted(RENDERERS))
def test_address_or_pool_never_both(dictionary: RadiusDictionary, vendor: str) -> None:
    names = [n for n, _ in decoded(dictionary, renderer_for(vendor, dictionary).render(NEGATIVE_BALANCE))]
    assert "Framed-Pool" in names and "Framed-IP-Address" not in names
    with pytest.raises(InvalidProfile, match="exclusive"):
        Authorization(GOLD, framed_ip=IPv4Address("192.0.2.1"), framed_pool="p")


@given(
    address=st.integers(min_value=0, max_value=2**128 - 1),
    prefix_length=st.integers(min_value=0, max_value=128),
    delegated_length=st.integers(min_value=0, max_value=128),
)
def test_ipv6_prefixes_round_trip(
    dictionary: RadiusDictionary, address: int, prefix_length: int, delegated_length: int
) -> None:
    framed = IPv6Network((address, prefix_length), strict=False)
    delegated = IPv6Network((address ^ 0xFFFF, delegated_length), strict=False)
    attrs = renderer_for("generic", dictionary).render(
        Authorization(GOLD, ipv6_prefix=framed, delegated_prefix=delegated)
    )
    (framed_code, framed_raw), (delegated_code, delegated_raw) = attrs  # type: ignore[misc]
    assert framed_code == dictionary.attribute("Framed-IPv6-Prefix").code == 97
    assert delegated_code == dictionary.attribute("Delegated-IPv6-Prefix").code == 123
    # RFC 3162 §2.3: reserved octet, prefix length, only the significant octets
    assert framed_raw[:2] == bytes((0, prefix_length)) and len(framed_raw) == 2 + -(-prefix_length // 8)
    assert framed_raw == codec.encode_value("ipv6prefix", framed)
    assert delegated_raw == codec.encode_value("ipv6prefix", delegated)
    assert codec.decode_value("ipv6prefix", framed_raw) == framed
    assert codec.decode_value("ipv6prefix", delegated_raw) == delegated


def test_ipv6_prefix_vector(dictionary: RadiusDictionary) -> None:
    attrs = renderer_for("generic", dictionary).render(
        Authorization(GOLD, delegated_prefix=IPv6Network("2001:db8:100::/56"))
    )
    # type 123, reserved 0, /56 = 0x38, then 7 octets of prefix
    assert attrs == ((123, bytes.fromhex("00 38 20010db8010000")),)


# --------------------------------------------------------------------------- rates and validation


@pytest.mark.parametrize(
    ("kbps", "mikrotik", "junos"),
    [(1, "1k", "1k"), (999, "999k", "999k"), (1000, "1M", "1m"), (1500, "1500k", "1500k"),
     (50_000, "50M", "50m"), (1_000_000, "1000M", "1g"), (2_500_000, "2500M", "2500m")],
)  # fmt: skip
def test_rate_formats(kbps: int, mikrotik: str, junos: str) -> None:
    assert format_mikrotik_rate(kbps) == mikrotik
    assert format_junos_rate(kbps) == junos


@pytest.mark.parametrize(
    "kwargs",
    [
        {"down_kbps": 0, "up_kbps": 1},
        {"down_kbps": 1, "up_kbps": -5},
        {"down_kbps": 1.5, "up_kbps": 1},
        {"down_kbps": True, "up_kbps": 1},
        {"down_kbps": 10, "up_kbps": 10, "burst_down_kbps": 5},
        {"down_kbps": 10, "up_kbps": 10, "burst_time_s": 5},
        {"down_kbps": 10, "up_kbps": 10, "burst_threshold_kbps": 5},
    ],
)
def test_invalid_speed_profiles(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidProfile):
        SpeedProfile("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_timeout_s": -1},
        {"idle_timeout_s": 2**32},
        {"class_": b""},
        {"class_": "text"},
        {"framed_ip": "192.0.2.1"},
        {"ipv6_prefix": "2001:db8::/64"},
        {"framed_pool": ""},
    ],
)
def test_invalid_authorizations(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidProfile):
        Authorization(GOLD, **kwargs)  # type: ignore[arg-type]


def test_oversized_value_is_refused_at_render(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("mikrotik", dictionary)
    with pytest.raises(InvalidProfile, match="at most 247"):
        renderer.render(Authorization(GOLD, address_list="x" * 248))
    with pytest.raises(InvalidProfile, match="at most 253"):
        renderer.render(Authorization(GOLD, class_=b"c" * 254))


# --------------------------------------------------------------------------- registry and set-up


def test_unknown_vendor_lists_the_supported_ones(dictionary: RadiusDictionary) -> None:
    with pytest.raises(UnknownVendor) as caught:
        renderer_for("nokia", dictionary)
    message = str(caught.value)
    assert (
        message
        == "unknown NAS vendor 'nokia'; supported: accel-ppp, cisco, generic, huawei, juniper, mikrotik"
    )
    assert caught.value.supported == supported_vendors()
    assert isinstance(caught.value, LookupError) and isinstance(caught.value, VendorProfileError)


def test_bad_options_fail_at_start_up(dictionary: RadiusDictionary) -> None:
    with pytest.raises(VendorProfileError, match="mode"):
        renderer_for("cisco", dictionary, mode="shape")
    with pytest.raises(VendorProfileError, match="speed"):
        renderer_for("cisco", dictionary, policy_in="{speed}")
    with pytest.raises(VendorProfileError, match="bare service name"):
        renderer_for("juniper", dictionary, service="a(b)")
    with pytest.raises(TypeError):
        renderer_for("huawei", dictionary, mode="rate")


def test_missing_dictionary_attribute_fails_at_start_up(dictionary: RadiusDictionary) -> None:
    without = compile_dictionary(PyradDictionary(str(DICTIONARIES / "dictionary.rfc2865")))
    with pytest.raises(MissingAttribute, match="mikrotik: attribute 'Framed-Pool'"):
        renderer_for("mikrotik", without)
    with pytest.raises(MissingAttribute, match="expected string"):
        renderer_for("accel-ppp", dictionary, rate_attribute="Session-Timeout")


def test_every_renderer_builds_from_the_shipped_dictionaries(dictionary: RadiusDictionary) -> None:
    for vendor in supported_vendors():
        assert renderer_for(vendor, dictionary).vendor == vendor


def test_rendering_is_cached_per_authorization_and_per_profile(dictionary: RadiusDictionary) -> None:
    renderer = renderer_for("mikrotik", dictionary, cache_size=8)
    first = renderer.render(FULL)
    assert renderer.render(dataclasses.replace(FULL)) is first  # equal key, same tuple
    other = dataclasses.replace(FULL, framed_ip=IPv4Address("100.64.0.6"))
    assert renderer.render(other) != first
    info = renderer.speed_attributes.cache_info()  # type: ignore[attr-defined]
    assert info.hits >= 1 and info.currsize == 1


# --------------------------------------------------------------------------- on the wire


@pytest.mark.parametrize("vendor", sorted(RENDERERS))
def test_access_accept_verifies_with_pyrad(dictionary: RadiusDictionary, vendor: str) -> None:
    pyrad_dictionary = PyradDictionary(str(DICTIONARIES / "dictionary"))
    request = pyrad_packet.AuthPacket(id=42, secret=SECRET, dict=pyrad_dictionary)
    request["User-Name"] = "alice@isp.example"
    request["User-Password"] = request.PwCrypt("secret")
    request.add_message_authenticator()
    packet = codec.decode(request.RequestPacket())

    auth = dataclasses.replace(FULL, profile=BURSTY)
    attrs = renderer_for(vendor, dictionary).render(auth)
    reply_raw = codec.encode_reply(packet, Code.ACCESS_ACCEPT, attrs, SECRET)

    reply = request.CreateReply(packet=reply_raw)
    assert request.VerifyReply(reply, reply_raw, enforce_ma=True)
    ours = codec.decode(reply_raw)
    assert codec.verify_response_authenticator(ours, packet, SECRET)
    assert ours.attributes[1:] == attrs  # after the Message-Authenticator, in order
    assert reply["Session-Timeout"] == [86_400]
    assert reply["Framed-IP-Address"] == ["100.64.0.5"]
    expected = {
        "mikrotik": ("Mikrotik-Rate-Limit", ["10M/50M 15M/80M 8M/8M 10/10"]),
        "accel-ppp": ("Filter-Id", ["50000/10000"]),
        "huawei": ("Huawei-Output-Peak-Rate", [80_000_000]),
        "cisco": (
            "Cisco-AVPair",
            ["subscriber:sub-qos-policy-in=turbo-in", "subscriber:sub-qos-policy-out=turbo-out"],
        ),
        "generic": ("Class", [b"\x01sub-42"]),
    }.get(vendor)
    if expected is not None:
        assert reply[expected[0]] == expected[1]
