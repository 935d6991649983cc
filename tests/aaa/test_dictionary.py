"""Tests of aaa.dictionary and of the shipped FreeRADIUS-format files in conf/dictionaries."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from aaa import codec
from aaa.dictionary import (
    AttributeDef,
    DataType,
    DictionaryError,
    RadiusDictionary,
    load_dictionaries,
)

DICTIONARIES = Path(__file__).parents[2] / "conf" / "dictionaries"
EXPECTED_FILES = {
    "dictionary",
    "dictionary.rfc2865",
    "dictionary.rfc2866",
    "dictionary.rfc2869",
    "dictionary.rfc3162",
    "dictionary.rfc4679",
    "dictionary.rfc4818",
    "dictionary.rfc5176",
    "dictionary.rfc5997",
    "dictionary.rfc6911",
    "dictionary.mikrotik",
    "dictionary.cisco",
    "dictionary.juniper",
    "dictionary.erx",
    "dictionary.huawei",
    "dictionary.accel-ppp",
    "dictionary.microsoft",
}


@pytest.fixture(scope="module")
def radius_dict() -> RadiusDictionary:
    return load_dictionaries(DICTIONARIES)


# --------------------------------------------------------------------------- the shipped files


def test_every_shipped_file_is_included_and_nothing_else() -> None:
    assert {p.name for p in DICTIONARIES.iterdir()} == EXPECTED_FILES
    included = re.findall(r"^\$INCLUDE\s+(\S+)", (DICTIONARIES / "dictionary").read_text(), re.MULTILINE)
    assert sorted(included) == sorted(EXPECTED_FILES - {"dictionary"})


def test_pyrad_parses_the_files_without_warnings_or_skips(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyrad"):
        loaded = load_dictionaries(DICTIONARIES)
    assert loaded.skipped == frozenset()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(loaded) > 400


_KEYWORDS = {"ATTRIBUTE", "VALUE", "VENDOR", "BEGIN-VENDOR", "END-VENDOR", "$INCLUDE"}
_FLAGS = re.compile(r"^(has_tag|encrypt=[123])(,(has_tag|encrypt=[123]))*$")


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_files_use_only_what_pyrad_understands(name: str) -> None:
    """pyrad silently ignores keywords it does not know: catch them here instead."""
    in_vendor = ""
    for number, line in enumerate((DICTIONARIES / name).read_text().splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        where = f"{name}:{number}"
        assert tokens[0] in _KEYWORDS, f"{where}: keyword {tokens[0]!r}"
        if tokens[0] == "ATTRIBUTE":
            assert len(tokens) in (4, 5), where
            assert tokens[2].isdigit() and 1 <= int(tokens[2]) <= 255, f"{where}: code {tokens[2]}"
            assert tokens[3] in set(DataType) - {DataType.TLV}, f"{where}: type {tokens[3]}"
            if len(tokens) == 5:
                assert _FLAGS.match(tokens[4]), f"{where}: flags {tokens[4]}"
        elif tokens[0] == "VALUE":
            assert len(tokens) == 4 and tokens[3].isdigit(), where
        elif tokens[0] == "VENDOR":
            assert len(tokens) == 3 and tokens[2].isdigit(), f"{where}: only the default format=1,1"
        elif tokens[0] == "BEGIN-VENDOR":
            assert len(tokens) == 2 and not in_vendor, where
            in_vendor = tokens[1]
        elif tokens[0] == "END-VENDOR":
            assert tokens[1:] == [in_vendor], where
            in_vendor = ""
    assert not in_vendor, f"{name}: BEGIN-VENDOR {in_vendor} not closed"


@pytest.mark.parametrize(
    ("name", "key", "data_type"),
    [
        ("User-Name", 1, "string"),
        ("User-Password", 2, "string"),
        ("CHAP-Password", 3, "octets"),
        ("NAS-IP-Address", 4, "ipaddr"),
        ("Filter-Id", 11, "string"),
        ("Vendor-Specific", 26, "octets"),
        ("Calling-Station-Id", 31, "string"),
        ("Proxy-State", 33, "octets"),
        ("Acct-Status-Type", 40, "integer"),
        ("Acct-Session-Id", 44, "string"),
        ("Acct-Terminate-Cause", 49, "integer"),
        ("Acct-Output-Gigawords", 53, "integer"),
        ("Event-Timestamp", 55, "date"),
        ("CHAP-Challenge", 60, "octets"),
        ("Message-Authenticator", 80, "octets"),
        ("Acct-Interim-Interval", 85, "integer"),
        ("NAS-Port-Id", 87, "string"),
        ("NAS-IPv6-Address", 95, "ipv6addr"),
        ("Framed-Interface-Id", 96, "ifid"),
        ("Framed-IPv6-Prefix", 97, "ipv6prefix"),
        ("Error-Cause", 101, "integer"),
        ("Delegated-IPv6-Prefix", 123, "ipv6prefix"),
        ("Framed-IPv6-Address", 168, "ipv6addr"),
        ("Stateful-IPv6-Address-Pool", 172, "string"),
        ("Agent-Circuit-Id", (3561, 1), "octets"),
        ("Agent-Remote-Id", (3561, 2), "octets"),
        ("Actual-Data-Rate-Downstream", (3561, 130), "integer"),
        ("Mikrotik-Rate-Limit", (14988, 8), "string"),
        ("Mikrotik-Address-List", (14988, 19), "string"),
        ("Cisco-AVPair", (9, 1), "string"),
        ("Cisco-Account-Info", (9, 250), "string"),
        ("Juniper-Local-User-Name", (2636, 1), "string"),
        ("ERX-Ingress-Policy-Name", (4874, 10), "string"),
        ("ERX-Egress-Policy-Name", (4874, 11), "string"),
        ("ERX-Qos-Profile-Name", (4874, 26), "string"),
        ("ERX-Service-Activate", (4874, 65), "string"),
        ("ERX-Service-Deactivate", (4874, 66), "string"),
        ("Huawei-Input-Average-Rate", (2011, 2), "integer"),
        ("Huawei-Input-Peak-Rate", (2011, 3), "integer"),
        ("Huawei-Output-Average-Rate", (2011, 5), "integer"),
        ("Huawei-Output-Peak-Rate", (2011, 6), "integer"),
        ("Accel-VRF-Name", (55999, 1), "string"),
    ],
)
def test_attribute_codes_and_types(
    radius_dict: RadiusDictionary, name: str, key: object, data_type: str
) -> None:
    definition = radius_dict.attribute(name)
    assert definition.key == key
    assert definition.data_type == data_type
    assert radius_dict.lookup(key) is definition  # type: ignore[arg-type]


def test_flags(radius_dict: RadiusDictionary) -> None:
    assert radius_dict["User-Password"].encrypt == 1
    assert radius_dict["ERX-Service-Activate"].has_tag
    assert radius_dict["ERX-LI-Action"].encrypt == 2
    assert not radius_dict["User-Name"].has_tag and radius_dict["User-Name"].encrypt == 0


def test_vendors(radius_dict: RadiusDictionary) -> None:
    assert dict(radius_dict.vendors) == {
        "ADSL-Forum": 3561,
        "Cisco": 9,
        "ERX": 4874,
        "Huawei": 2011,
        "Juniper": 2636,
        "Mikrotik": 14988,
        "Accel-PPP": 55999,
        "Microsoft": 311,
    }
    assert radius_dict.vendor_names[14988] == "Mikrotik"
    assert radius_dict.vendor_id("Huawei") == 2011
    assert radius_dict["Mikrotik-Rate-Limit"].vendor_name == "Mikrotik"
    assert radius_dict["Mikrotik-Rate-Limit"].is_vendor_specific
    with pytest.raises(KeyError, match="Ascend"):
        radius_dict.vendor_id("Ascend")


def test_named_values(radius_dict: RadiusDictionary) -> None:
    status = radius_dict["Acct-Status-Type"]
    assert status.values["Start"] == 1 and status.values["Interim-Update"] == 3
    assert status.value_names[2] == "Stop"
    assert radius_dict["Service-Type"].values["Authorize-Only"] == 17  # from dictionary.rfc5176
    assert radius_dict["NAS-Port-Type"].values["PPPoEoVLAN"] == 33  # from dictionary.rfc4679
    assert radius_dict["Error-Cause"].value_names[503] == "Session-Context-Not-Found"
    assert radius_dict["ERX-Acct-Request-Reason"].values["CoA-Complete"] == 1024
    assert radius_dict["User-Name"].values == {}


def test_lookups(radius_dict: RadiusDictionary) -> None:
    assert radius_dict.find("mikrotik-rate-limit") is radius_dict["Mikrotik-Rate-Limit"]
    assert "USER-NAME" in radius_dict
    assert "No-Such-Attribute" not in radius_dict
    assert radius_dict.find("No-Such-Attribute") is None
    assert radius_dict.lookup(17) is None
    assert radius_dict.lookup((14988, 200)) is None
    with pytest.raises(KeyError, match="No-Such-Attribute"):
        radius_dict.attribute("No-Such-Attribute")
    assert {d.name for d in radius_dict} >= {"User-Name", "Cisco-AVPair"}


def test_compiled_dictionary_is_immutable(radius_dict: RadiusDictionary) -> None:
    with pytest.raises(TypeError):
        radius_dict.by_name["X"] = radius_dict["User-Name"]  # type: ignore[index]
    with pytest.raises(TypeError):
        radius_dict["Acct-Status-Type"].values["X"] = 9  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        radius_dict["User-Name"].code = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        radius_dict.vendors = {}  # type: ignore[misc]
    assert not any("pyrad" in type(v).__module__ for v in radius_dict.by_name.values())


def test_decoded_packet_is_named_and_typed_through_the_dictionary(radius_dict: RadiusDictionary) -> None:
    vector = (Path(__file__).parent / "vectors" / "valid.txt").read_text()
    hexes = re.search(r"case accounting-request-start\n(?:#.*\n)*secret \S+\npacket (.*)\n", vector)
    assert hexes is not None
    packet = codec.decode(bytes.fromhex(hexes.group(1)))
    named = {}
    for attr in packet.attributes:
        key = attr[0] if len(attr) == 2 else (attr[0], attr[1])
        definition = radius_dict.lookup(key)  # type: ignore[arg-type]
        assert definition is not None
        value = codec.decode_value(definition.data_type, attr[-1])  # type: ignore[arg-type]
        named[definition.name] = definition.value_names.get(value, value)  # type: ignore[call-overload]
    assert named["Acct-Status-Type"] == "Start"
    assert named["Acct-Session-Id"] == "8100a3c9"
    assert str(named["Framed-IP-Address"]) == "100.64.0.7"
    assert named["Mikrotik-Rate-Limit"] == "10M/20M"


# --------------------------------------------------------------------------- operator files and errors


def test_operator_file_adds_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "dictionary.local"
    extra.write_text(
        "VENDOR\tExample-ISP\t64512\n"
        "BEGIN-VENDOR\tExample-ISP\n"
        "ATTRIBUTE\tExample-Tariff\t1\tstring\n"
        "ATTRIBUTE\tExample-Quota\t2\tinteger64\n"
        "END-VENDOR\tExample-ISP\n"
        "# an operator renames Filter-Id\n"
        "ATTRIBUTE\tLocal-Filter\t11\tstring\n"
        "VALUE\tAcct-Status-Type\tKeep-Alive\t3\n"
    )
    loaded = load_dictionaries(DICTIONARIES, extra=[extra])
    assert loaded["Example-Tariff"].key == (64512, 1)
    assert loaded["Example-Quota"].data_type is DataType.INTEGER64
    assert loaded.lookup(11) is loaded["Local-Filter"]
    assert "Filter-Id" not in loaded
    assert loaded["Acct-Status-Type"].values["Keep-Alive"] == 3
    assert loaded["Acct-Status-Type"].values["Interim-Update"] == 3


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError, match="not found") as caught:
        load_dictionaries(tmp_path / "nowhere")
    assert caught.value.file.endswith("nowhere/dictionary")


def test_missing_extra_file(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError) as caught:
        load_dictionaries(DICTIONARIES, extra=[tmp_path / "dictionary.local"])
    assert "dictionary.local" in str(caught.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dictionary").write_text("ATTRIBUTE\tUser-Name\t1\tstring\nATTRIBUTE\tBroken\tx\tstring\n")
    with pytest.raises(DictionaryError) as caught:
        load_dictionaries(tmp_path)
    assert caught.value.line == 2
    assert caught.value.file.endswith("dictionary")
    assert "Illegal attribute code" in str(caught.value)


def test_unknown_type_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dictionary").write_text("ATTRIBUTE\tOdd\t200\tnosuchtype\n")
    with pytest.raises(DictionaryError, match="Illegal type"):
        load_dictionaries(tmp_path)


def test_missing_include(tmp_path: Path) -> None:
    (tmp_path / "dictionary").write_text("$INCLUDE dictionary.absent\n")
    with pytest.raises(DictionaryError) as caught:
        load_dictionaries(tmp_path)
    assert "dictionary.absent" in str(caught.value)


def test_attribute_def_key() -> None:
    standard = AttributeDef(name="X", code=7, data_type=DataType.INTEGER)
    vendor = AttributeDef(name="Y", code=7, data_type=DataType.STRING, vendor_id=9, vendor_name="Cisco")
    assert standard.key == 7 and not standard.is_vendor_specific
    assert vendor.key == (9, 7)
