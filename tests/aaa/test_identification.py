"""Tests of aaa.identification: MAC formats, logins and realms, DHCP Option 82 from every
vendor attribute (built as real packets with pyrad's client and decoded with aaa.codec),
circuit-id and remote-id forms, the plan's order, and that client data never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from aaa import codec
from aaa.codec import RadiusPacket
from aaa.dictionary import RadiusDictionary, load_dictionaries
from aaa.identification import (
    OPTION82_ATTRIBUTES,
    IdentificationPlan,
    Option82,
    Option82Attributes,
    PortKey,
    candidates,
    decode_circuit_id,
    decode_remote_id,
    find_option82,
    fold_login,
    parse_mac,
    port_key,
)

DICTIONARY_DIR = Path(__file__).parents[2] / "conf" / "dictionaries"
DICTIONARY_FILE = DICTIONARY_DIR / "dictionary"
SECRET = b"testing123"

# Binary vectors used below, byte by byte.
#
# circuit-id "vlan-mod-port" (RFC 3046 sub-option 1 value, D-Link/Cisco/SNR format):
#   00      type 0 (vlan-mod-port)
#   04      length 4
#   00 64   VLAN 100
#   01      module 1
#   05      port 5
CIRCUIT_VLAN_MOD_PORT = bytes.fromhex("00 04 0064 01 05")
# remote-id, switch MAC (RFC 3046 sub-option 2 value):
#   00                  type 0 (MAC address)
#   06                  length 6
#   00 1e 58 a1 b2 c3   the switch's MAC 00:1e:58:a1:b2:c3
REMOTE_SWITCH_MAC = bytes.fromhex("00 06 001e58a1b2c3")
SWITCH_MAC = "00:1e:58:a1:b2:c3"
# DHCP option 82 value (relay agent information), two sub-options:
#   01 06                 sub-option 1 (Agent Circuit ID), length 6
#   00 04 00 64 01 05     CIRCUIT_VLAN_MOD_PORT
#   02 08                 sub-option 2 (Agent Remote ID), length 8
#   00 06 00 1e 58 a1 b2 c3   REMOTE_SWITCH_MAC
RELAY_AGENT_INFORMATION = bytes.fromhex("01 06 000400640105 02 08 0006001e58a1b2c3")
EXPECTED_BINARY_PORT = PortKey(SWITCH_MAC, "1/5", 100)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pyrad_dictionary() -> PyradDictionary:
    return PyradDictionary(str(DICTIONARY_FILE))


@pytest.fixture(scope="module")
def dictionary() -> RadiusDictionary:
    return load_dictionaries(DICTIONARY_DIR)


@pytest.fixture(scope="module")
def option82(dictionary: RadiusDictionary) -> Option82Attributes:
    return Option82Attributes.from_dictionary(dictionary)


def _request(pyrad_dictionary: PyradDictionary, *attributes: tuple[str, str | bytes]) -> RadiusPacket:
    """An Access-Request built by pyrad's client, as datagram bytes, decoded by our codec."""
    request = pyrad_packet.AuthPacket(id=42, secret=SECRET, dict=pyrad_dictionary)
    for name, value in attributes:
        request.AddAttribute(name, value)
    return codec.decode(request.RequestPacket())


# --------------------------------------------------------------------------- MAC addresses


@pytest.mark.parametrize(
    "text",
    [
        "aabb.ccdd.eeff",  # Cisco
        "AABB.CCDD.EEFF",
        "AA-BB-CC-DD-EE-FF",  # Windows, Huawei
        "aa-bb-cc-dd-ee-ff",
        "aabbccddeeff",
        "AABBCCDDEEFF",
        "AA:BB:CC:DD:EE:FF",
        "aa:bb:cc:dd:ee:ff",
        "aabb-ccdd-eeff",  # Huawei
        "AaBb-CcDd-EeFf",
        "  aa:bb:cc:dd:ee:ff ",
        "\taabb.ccdd.eeff\r\n",
    ],
)
def test_mac_formats_are_canonicalised(text: str) -> None:
    assert parse_mac(text) == "aa:bb:cc:dd:ee:ff"
    assert parse_mac(text.encode()) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "aa:bb:cc:dd:ee",  # five octets
        "aa:bb:cc:dd:ee:ff:00",  # seven
        "aabbccddeef",  # eleven digits
        "aabbccddeeff0",  # thirteen
        "aa:bb-cc:dd:ee:ff",  # mixed separators
        "aa-bb-cc-dd-ee:ff",
        "aabb.ccdd-eeff",
        "aa.bb.cc.dd.ee.ff",  # dots between octets: not a common format
        "aabb:ccdd:eeff",  # colons between groups of four
        "aa bb cc dd ee ff",
        "gg:bb:cc:dd:ee:ff",  # not hex
        "aabbccddeefg",
        "aa:bb:cc:dd:ee:f ",
        " a:bb:cc:dd:ee:ff",
        "0x:bb:cc:dd:ee:ff",
        "+a:bb:cc:dd:ee:ff",
        "ａａbbccddeeff",  # full-width letters
        "aa:bb:cc:dd:ee:ff\x00",  # trailing NUL is not whitespace
        "demo",
        "demo@isp.example",
    ],
)
def test_other_shapes_are_not_macs(text: str) -> None:
    assert parse_mac(text) is None


def test_non_ascii_bytes_are_not_a_mac() -> None:
    assert parse_mac(b"\xaa\xbb\xcc\xdd\xee\xff") is None
    assert parse_mac("aabbccddeeff".encode("utf-16-le")) is None


@given(st.binary(min_size=6, max_size=6))
def test_every_mac_format_gives_the_same_canonical_form(octets: bytes) -> None:
    plain = octets.hex()
    quads = [plain[i : i + 4] for i in (0, 4, 8)]
    forms = [
        plain,
        plain.upper(),
        octets.hex(":"),
        octets.hex("-").upper(),
        ".".join(quads),
        "-".join(quads).upper(),
    ]
    assert {parse_mac(form) for form in forms} == {octets.hex(":")}


@given(st.one_of(st.text(max_size=40), st.binary(max_size=40)))
def test_parse_mac_never_raises(value: str | bytes) -> None:
    result = parse_mac(value)
    assert result is None or (len(result) == 17 and parse_mac(result) == result)


@given(st.text(alphabet="0123456789abcdefABCDEF:-. \t", max_size=20))
def test_parse_mac_never_raises_on_near_misses(value: str) -> None:
    result = parse_mac(value)
    assert result is None or result == result.lower()


# --------------------------------------------------------------------------- logins


@pytest.mark.parametrize(
    ("user_name", "strip_realm", "case_sensitive", "expected"),
    [
        (b"demo", False, True, "demo"),
        (b"Demo", False, True, "Demo"),
        (b"Demo", False, False, "demo"),
        (b"demo@isp.example", False, True, "demo@isp.example"),
        (b"demo@isp.example", True, True, "demo"),
        (b"Demo@ISP", True, False, "demo"),
        (b"a@b@realm", True, True, "a@b"),  # the realm is after the last "@", as FreeRADIUS's suffix
        (b"demo@", True, True, "demo"),
        (b"@realm", True, True, None),  # nothing left
        (b"", False, True, None),
        (b"\xff\xfe", False, True, None),  # not UTF-8
        ("Straße".encode(), False, False, "strasse"),  # casefold, not lower
    ],
)
def test_login_of(user_name: bytes, strip_realm: bool, case_sensitive: bool, expected: str | None) -> None:
    plan = IdentificationPlan(strip_realm=strip_realm, login_case_sensitive=case_sensitive)
    assert plan.login_of(user_name) == expected


def test_fold_login_is_what_a_case_insensitive_plan_uses() -> None:
    plan = IdentificationPlan(login_case_sensitive=False)
    assert plan.login_of(b"DeMo") == fold_login("DeMo") == fold_login("demo")


# --------------------------------------------------------------------------- circuit-id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (CIRCUIT_VLAN_MOD_PORT, ("1/5", 100)),
        # 00 04 | 0f fe VLAN 4094 | 00 module 0 | 18 port 24
        (bytes.fromhex("00 04 0ffe 00 18"), ("0/24", 4094)),
        (b"eth 0/1/2:100", ("eth 0/1/2", 100)),  # Huawei / ZTE
        (b"Gi1/0/5", ("Gi1/0/5", None)),  # Cisco
        (b"Gi1/0/5.200", ("Gi1/0/5", 200)),
        (b"ge-0/0/1.100", ("ge-0/0/1", 100)),  # Juniper
        (b"1/1/14", ("1/1/14", None)),  # bare slot/port
        (b"1/1/14:7", ("1/1/14", 7)),
        (b"GigabitEthernet0/0/1:4094", ("GigabitEthernet0/0/1", 4094)),
        (b" eth 0/1/2:100 ", ("eth 0/1/2", 100)),
        (b"eth 0/1/2:4095", ("eth 0/1/2:4095", None)),  # not a VLAN id: the text is the port
        (b"eth 0/1/2:0", ("eth 0/1/2:0", None)),
        (b"eth 0/1/2:100.200", ("eth 0/1/2:100.200", None)),  # QinQ: kept whole
        (b"ONU-0042 room 12", ("ONU-0042 room 12", None)),  # other text: kept whole
        # 01 type 1 (user-defined text) | 0c length 12 | "eth 0/1/2:55"
        (b"\x01\x0ceth 0/1/2:55", ("eth 0/1/2", 55)),
        # 00 04 | 00 64 | 01 -- one octet short of vlan-mod-port: opaque
        (bytes.fromhex("00 04 0064 01"), ("0x00040064" + "01", None)),
        # 00 05 | ... -- wrong length octet: opaque
        (bytes.fromhex("00 05 0064 01 05"), ("0x000500640105", None)),
        (b"\xde\xad\xbe\xef", ("0xdeadbeef", None)),
        (b"eth\x000/1", ("0x65746800302f31", None)),  # not printable
        ("порт1".encode(), ("0x" + "порт1".encode().hex(), None)),  # not ASCII
    ],
)
def test_decode_circuit_id(raw: bytes, expected: tuple[str, int | None]) -> None:
    assert decode_circuit_id(raw) == expected


# --------------------------------------------------------------------------- remote-id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (REMOTE_SWITCH_MAC, SWITCH_MAC),
        # 01 type 1 | 06 length 6 | 00 1e 58 a1 b2 c3 (TP-Link user-defined, still a MAC)
        (bytes.fromhex("01 06 001e58a1b2c3"), SWITCH_MAC),
        (b"sw-access-17", "sw-access-17"),  # hostname
        (b"SW-Access-17", "SW-Access-17"),  # as sent
        (b"00-1E-58-A1-B2-C3", SWITCH_MAC),  # a MAC as text
        (b"001e.58a1.b2c3", SWITCH_MAC),
        # 00 1e 58 a1 b2 c3 -- bare six octets, no type/length: opaque
        (bytes.fromhex("001e58a1b2c3"), "0x001e58a1b2c3"),
        (b"\x00\x06\x00\x1e", "0x0006001e"),  # truncated
    ],
)
def test_decode_remote_id(raw: bytes, expected: str) -> None:
    assert decode_remote_id(raw) == expected


def test_port_key_is_a_dict_key() -> None:
    bindings = {PortKey(SWITCH_MAC, "1/5", 100): "service 7"}
    assert bindings[port_key(CIRCUIT_VLAN_MOD_PORT, REMOTE_SWITCH_MAC)] == "service 7"
    assert port_key(b"Gi1/0/5", None) == PortKey("", "Gi1/0/5", None)


# ------------------------------------------------------------------ Option 82 from packets


def test_dictionary_lacks_at_most_the_mikrotik_agent_attributes(option82: Option82Attributes) -> None:
    # RouterOS sends the RFC 4679 attributes; our dictionary has no Mikrotik-Agent-* (yet)
    assert set(option82.missing) <= {"Mikrotik-Agent-Circuit-Id", "Mikrotik-Agent-Remote-Id"}


def test_rfc4679_binary(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary,
        ("Agent-Circuit-Id", CIRCUIT_VLAN_MOD_PORT),
        ("Agent-Remote-Id", REMOTE_SWITCH_MAC),
    )
    found = find_option82(req, option82)
    assert found == Option82(CIRCUIT_VLAN_MOD_PORT, REMOTE_SWITCH_MAC, "Agent-Circuit-Id")
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT
    assert str(found) == "circuit-id=000400640105 remote-id=0006001e58a1b2c3 (Agent-Circuit-Id)"


def test_rfc4679_text(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary,
        ("Agent-Circuit-Id", b"eth 0/1/2:100"),
        ("Agent-Remote-Id", b"olt-3.example"),
    )
    plan = IdentificationPlan(methods=("port",))
    assert list(candidates(req, plan, option82)) == [("port", PortKey("olt-3.example", "eth 0/1/2", 100))]


def test_erx_access_loop_ids(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary,
        ("ERX-Acc-Loop-Cir-Id", "ge-0/0/1.100"),
        ("ERX-Acc-Loop-Remote-Id", "sw-7"),
    )
    found = find_option82(req, option82)
    assert found is not None and found.source == "ERX-Acc-Loop-Cir-Id"
    assert port_key(found.circuit_id, found.remote_id) == PortKey("sw-7", "ge-0/0/1", 100)


def test_cisco_avpair(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary,
        ("Cisco-AVPair", "client-mac-address=aabb.ccdd.eeff"),
        ("Cisco-AVPair", "circuit-id-tag=Gi1/0/5"),
        ("Cisco-AVPair", "remote-id-tag=sw-access-17"),
    )
    found = find_option82(req, option82)
    assert found == Option82(b"Gi1/0/5", b"sw-access-17", "Cisco-AVPair")
    assert port_key(found.circuit_id, found.remote_id) == PortKey("sw-access-17", "Gi1/0/5", None)


def test_cisco_avpair_binary_value(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    # "circuit-id-tag=" then the six raw octets of CIRCUIT_VLAN_MOD_PORT;
    # "remote-id-tag=" then the eight raw octets of REMOTE_SWITCH_MAC
    req = _request(
        pyrad_dictionary,
        ("Cisco-AVPair", b"circuit-id-tag=" + CIRCUIT_VLAN_MOD_PORT),
        ("Cisco-AVPair", b"remote-id-tag=" + REMOTE_SWITCH_MAC),
    )
    found = find_option82(req, option82)
    assert found is not None
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT


def test_erx_dhcp_options(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    options = bytes.fromhex(
        "35 01 01"  # option 53 (DHCP message type), length 1, DHCPDISCOVER
        "00"  # option 0 (pad)
        "37 03 01 03 06"  # option 55 (parameter request list), length 3: 1, 3, 6
        "52 12"  # option 82 (relay agent information), length 18:
        "01 06 000400640105"  #   sub-option 1 circuit-id, length 6, CIRCUIT_VLAN_MOD_PORT
        "02 08 0006001e58a1b2c3"  #   sub-option 2 remote-id, length 8, REMOTE_SWITCH_MAC
        "ff"  # option 255 (end)
    )
    req = _request(pyrad_dictionary, ("ERX-Dhcp-Options", options))
    found = find_option82(req, option82)
    assert found is not None and found.source == "ERX-Dhcp-Options"
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT


@pytest.mark.parametrize(
    "options",
    [
        bytes.fromhex("35 01 01 ff 52 02 0102"),  # option 82 after the end option: ignored
        bytes.fromhex("35 01 01 52 14 01 06"),  # option 82 longer than what is left
        bytes.fromhex("35"),  # an option code without a length
        bytes.fromhex("52 00"),  # an empty option 82
        bytes.fromhex("52 04 01 06 0004"),  # its circuit-id sub-option truncated
        b"",
    ],
)
def test_broken_erx_dhcp_options_give_no_option82(option82: Option82Attributes, options: bytes) -> None:
    req = codec.RadiusPacket(1, 1, bytes(16), ((4874, 55, options),))
    assert find_option82(req, option82) is None


@pytest.mark.parametrize(
    "value",
    [
        RELAY_AGENT_INFORMATION,  # the option's value, as JUNOSe sends it
        bytes((82, len(RELAY_AGENT_INFORMATION))) + RELAY_AGENT_INFORMATION,  # 52 12 + the value
    ],
)
def test_erx_dhcp_option_82(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes, value: bytes
) -> None:
    req = _request(pyrad_dictionary, ("ERX-Dhcp-Option-82", value))
    found = find_option82(req, option82)
    assert found is not None and found.source == "ERX-Dhcp-Option-82"
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT


@pytest.mark.parametrize(
    "value",
    [
        # new format: 52 option 82 | 12 length 18 | RELAY_AGENT_INFORMATION
        bytes((82, len(RELAY_AGENT_INFORMATION))) + RELAY_AGENT_INFORMATION,
        # old format: 00 52 option 82 in two octets | RELAY_AGENT_INFORMATION to the end
        bytes((0, 82)) + RELAY_AGENT_INFORMATION,
    ],
)
def test_huawei_dhcp_option(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes, value: bytes
) -> None:
    req = _request(pyrad_dictionary, ("Huawei-DHCP-Option", value))
    found = find_option82(req, option82)
    assert found is not None and found.source == "Huawei-DHCP-Option"
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT


def test_huawei_dhcp_option_other_than_82(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    # old format: 00 3c option 60 (vendor class) | "MSFT 5.0"
    req = _request(pyrad_dictionary, ("Huawei-DHCP-Option", b"\x00\x3cMSFT 5.0"))
    assert find_option82(req, option82) is None


def test_rfc4679_is_preferred_over_vendor_attributes(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    req = _request(
        pyrad_dictionary,
        ("ERX-Dhcp-Options", bytes((82, len(RELAY_AGENT_INFORMATION))) + RELAY_AGENT_INFORMATION),
        ("Cisco-AVPair", "circuit-id-tag=Gi9/9/9"),
        ("Agent-Circuit-Id", b"eth 0/1/2:100"),
    )
    found = find_option82(req, option82)
    # circuit-id from RFC 4679; remote-id from the only source that has one
    assert found == Option82(b"eth 0/1/2:100", REMOTE_SWITCH_MAC, "Agent-Circuit-Id")


def test_mikrotik_agent_attributes_are_used_when_an_operator_dictionary_defines_them(tmp_path: Path) -> None:
    # hypothetical codes, for the test only: RouterOS defines no such attributes
    extra = tmp_path / "dictionary.operator"
    extra.write_text(
        "BEGIN-VENDOR\tMikrotik\n"
        "ATTRIBUTE\tMikrotik-Agent-Circuit-Id\t240\toctets\n"
        "ATTRIBUTE\tMikrotik-Agent-Remote-Id\t241\toctets\n"
        "END-VENDOR\tMikrotik\n"
    )
    attributes = Option82Attributes.from_dictionary(load_dictionaries(DICTIONARY_DIR, extra=[extra]))
    assert attributes.missing == ()
    pyrad_dictionary = PyradDictionary(str(DICTIONARY_FILE), str(extra))
    req = _request(
        pyrad_dictionary,
        ("Mikrotik-Agent-Circuit-Id", CIRCUIT_VLAN_MOD_PORT),
        ("Mikrotik-Agent-Remote-Id", REMOTE_SWITCH_MAC),
    )
    found = find_option82(req, attributes)
    assert found is not None and found.source == "Mikrotik-Agent-Circuit-Id"
    assert port_key(found.circuit_id, found.remote_id) == EXPECTED_BINARY_PORT


def test_a_request_without_option82(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary,
        ("User-Name", "demo"),
        ("Cisco-AVPair", "ip:addr-pool=pool1"),
        ("Mikrotik-Realm", "x"),
    )
    assert find_option82(req, option82) is None


# the hypothesis test below runs many examples: compile once at import
_OPTION82 = Option82Attributes.from_dictionary(load_dictionaries(DICTIONARY_DIR))
_VENDOR_KEYS = st.sampled_from(
    [(3561, 1), (3561, 2), (9, 1), (4874, 55), (4874, 159), (4874, 110), (2011, 187)]
)


@given(
    st.lists(
        st.tuples(_VENDOR_KEYS, st.binary(max_size=40)).map(lambda t: (*t[0], t[1])),
        max_size=6,
    ),
    st.binary(max_size=30),
    st.binary(max_size=30),
)
def test_identification_never_raises(
    vendor_attributes: list[tuple[int, int, bytes]], user_name: bytes, calling_station_id: bytes
) -> None:
    req = RadiusPacket(1, 1, bytes(16), ((1, user_name), (31, calling_station_id), *vendor_attributes))
    plan = IdentificationPlan(
        mac_from=("Calling-Station-Id", "User-Name"), strip_realm=True, port_without_remote_id=True
    )
    for method, key in candidates(req, plan, _OPTION82):
        assert method in ("login", "mac", "port")
        assert isinstance(key, PortKey if method == "port" else str)


# --------------------------------------------------------------------------- the plan


def _ipoe_request(pyrad_dictionary: PyradDictionary) -> RadiusPacket:
    return _request(
        pyrad_dictionary,
        ("User-Name", "AA-BB-CC-DD-EE-01"),  # IPoE: the BRAS puts the CPE MAC in User-Name
        ("Calling-Station-Id", "aabb.ccdd.ee02"),
        ("Agent-Circuit-Id", CIRCUIT_VLAN_MOD_PORT),
        ("Agent-Remote-Id", REMOTE_SWITCH_MAC),
    )


def test_default_plan_order(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _ipoe_request(pyrad_dictionary)
    assert list(candidates(req, IdentificationPlan(), option82)) == [
        ("login", "AA-BB-CC-DD-EE-01"),
        ("mac", "aa:bb:cc:dd:ee:02"),
        ("port", EXPECTED_BINARY_PORT),
    ]


def test_plan_order_is_the_configured_one(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    req = _ipoe_request(pyrad_dictionary)
    plan = IdentificationPlan(methods=("port", "mac"), mac_from=("User-Name", "Calling-Station-Id"))
    assert list(candidates(req, plan, option82)) == [
        ("port", EXPECTED_BINARY_PORT),
        ("mac", "aa:bb:cc:dd:ee:01"),
        ("mac", "aa:bb:cc:dd:ee:02"),
    ]


def test_mac_from_user_name_only(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _ipoe_request(pyrad_dictionary)
    plan = IdentificationPlan(methods=("mac",), mac_from=("User-Name",))
    assert list(candidates(req, plan, option82)) == [("mac", "aa:bb:cc:dd:ee:01")]


def test_the_same_mac_twice_is_one_candidate(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    req = _request(
        pyrad_dictionary, ("User-Name", "aabbccddeeff"), ("Calling-Station-Id", "AA:BB:CC:DD:EE:FF")
    )
    plan = IdentificationPlan(methods=("mac",), mac_from=("Calling-Station-Id", "User-Name"))
    assert list(candidates(req, plan, option82)) == [("mac", "aa:bb:cc:dd:ee:ff")]


def test_pppoe_login_with_realm(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _request(
        pyrad_dictionary, ("User-Name", "Demo@isp.example"), ("Calling-Station-Id", "00:11:22:33:44:55")
    )
    plan = IdentificationPlan(strip_realm=True, login_case_sensitive=False)
    assert list(candidates(req, plan, option82)) == [("login", "demo"), ("mac", "00:11:22:33:44:55")]


def test_absent_or_unusable_attributes_give_no_candidate(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    req = _request(pyrad_dictionary, ("Calling-Station-Id", "not-a-mac"), ("NAS-Identifier", "bras-1"))
    assert list(candidates(req, IdentificationPlan(), option82)) == []


def test_port_needs_a_remote_id_unless_the_plan_says_otherwise(
    pyrad_dictionary: PyradDictionary, option82: Option82Attributes
) -> None:
    req = _request(pyrad_dictionary, ("Agent-Circuit-Id", b"1/1/14"))
    assert list(candidates(req, IdentificationPlan(methods=("port",)), option82)) == []
    lenient = IdentificationPlan(methods=("port",), port_without_remote_id=True)
    assert list(candidates(req, lenient, option82)) == [("port", PortKey("", "1/1/14", None))]


def test_candidates_are_lazy(pyrad_dictionary: PyradDictionary, option82: Option82Attributes) -> None:
    req = _ipoe_request(pyrad_dictionary)
    assert next(candidates(req, IdentificationPlan(methods=("mac", "port")), option82)) == (
        "mac",
        "aa:bb:cc:dd:ee:02",
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"methods": ("login", "imsi")}, "methods"),
        ({"methods": ("mac", "mac")}, "methods"),
        ({"mac_from": ("Calling-Station-Id", "Framed-IP-Address")}, "mac_from"),
        ({"mac_from": ("User-Name", "User-Name")}, "mac_from"),
    ],
)
def test_invalid_plans_are_refused(settings: dict[str, tuple[str, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdentificationPlan(**settings)  # type: ignore[arg-type]


def test_plans_are_values() -> None:
    assert IdentificationPlan() == IdentificationPlan(methods=("login", "mac", "port"))
    assert hash(IdentificationPlan()) == hash(IdentificationPlan())


def test_option82_attribute_names_exist_in_the_dictionary_or_are_reported(
    dictionary: RadiusDictionary,
) -> None:
    for name, _kind in OPTION82_ATTRIBUTES:
        definition = dictionary.find(name)
        assert definition is None or definition.is_vendor_specific, name
