"""Vendor command templates and output parsers (pure functions) on recorded transcripts; the registry.

The transcripts in ``transcripts/`` are shaped as the devices print them (extra sections,
legends, statuses and interface types a parser must skip); none of these tests opens a socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nms_adapters.switches import (
    SUPPORTED_DEVICE_TYPES,
    SwitchAccess,
    UnknownDeviceType,
    canonical_port_name,
    cisco_ios,
    driver_for,
    huawei,
    same_port,
)
from nms_adapters.switches.config_text import InterfaceConfig

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def _transcript(name: str) -> str:
    return (TRANSCRIPTS / name).read_text()


def _config(name: str, *rate_lines: str) -> InterfaceConfig:
    return InterfaceConfig(name, admin_up=True, alias="", rate_kbps=None, rate_lines=rate_lines)


# ------------------------------------------------------------------ port names and registry


@pytest.mark.parametrize(
    ("typed", "full"),
    [
        ("Gi0/3", "GigabitEthernet0/3"),
        ("gigabitethernet 0/12", "GigabitEthernet0/12"),
        ("GE0/0/3", "GigabitEthernet0/0/3"),
        ("XGE0/0/1", "XGigabitEthernet0/0/1"),
        ("Te1/0/1", "TenGigabitEthernet1/0/1"),
        ("Fa0/1", "FastEthernet0/1"),
        ("Po1", "Port-channel1"),
        ("Eth-Trunk1", "Eth-Trunk1"),
    ],
)
def test_port_names_expand_cisco_and_huawei_abbreviations(typed: str, full: str) -> None:
    assert canonical_port_name(typed) == full


def test_port_names_that_are_not_interfaces_are_none_and_same_port_compares_canonically() -> None:
    assert canonical_port_name("uplink") is None
    assert same_port("Gi0/3", "GigabitEthernet0/3") and same_port("GE0/0/3", "gigabitethernet0/0/3")
    assert not same_port("Gi0/3", "Gi0/0/3")


def test_an_unknown_device_type_is_refused_listing_the_supported_ones() -> None:
    with pytest.raises(UnknownDeviceType) as refused:
        driver_for(SwitchAccess("sw9", "192.0.2.9", "dlink_ds"))
    assert SUPPORTED_DEVICE_TYPES == ("snmp", "cisco_ios", "huawei")
    assert "'dlink_ds'" in str(refused.value) and "supported: snmp, cisco_ios, huawei" in str(refused.value)


def test_switch_access_repr_shows_no_secrets() -> None:
    access = SwitchAccess("sw1", "192.0.2.1", "cisco_ios", password="pw-123", write_community="c0mm")
    assert "pw-123" not in repr(access) and "c0mm" not in repr(access)


# ------------------------------------------------------------------ Cisco IOS


def test_cisco_block_and_unblock_commands() -> None:
    assert cisco_ios.block_commands("GigabitEthernet0/3") == ["interface GigabitEthernet0/3", "shutdown"]
    assert cisco_ios.unblock_commands("GigabitEthernet0/3") == ["interface GigabitEthernet0/3", "no shutdown"]


def test_cisco_rate_limit_is_car_on_both_directions_with_bursts_of_one_and_a_half_seconds() -> None:
    assert cisco_ios.car_lines(20480) == [
        "rate-limit input 20480000 3840000 7680000 conform-action transmit exceed-action drop",
        "rate-limit output 20480000 3840000 7680000 conform-action transmit exceed-action drop",
    ]
    smallest = "rate-limit input 8000 1500 3000 conform-action transmit exceed-action drop"
    assert cisco_ios.car_lines(8)[0] == smallest
    with pytest.raises(ValueError, match="steps of 8 kbit/s"):
        cisco_ios.car_lines(1500)


def test_cisco_rate_change_removes_the_old_car_statements_then_adds_the_new_ones() -> None:
    old = cisco_ios.car_lines(10240)
    commands = cisco_ios.rate_commands("GigabitEthernet0/1", _config("GigabitEthernet0/1", *old), 20480)
    removals = [f"no {line}" for line in old]
    assert commands == ["interface GigabitEthernet0/1", *removals, *cisco_ios.car_lines(20480)]
    removal = cisco_ios.rate_commands("GigabitEthernet0/1", _config("GigabitEthernet0/1", *old), None)
    assert removal == ["interface GigabitEthernet0/1", *(f"no {line}" for line in old)]


def test_cisco_rate_already_in_place_needs_no_commands() -> None:
    current = _config("GigabitEthernet0/1", *reversed(cisco_ios.car_lines(20480)))
    assert cisco_ios.rate_commands("GigabitEthernet0/1", current, 20480) == []
    assert cisco_ios.rate_commands("GigabitEthernet0/1", _config("GigabitEthernet0/1"), None) == []


def test_cisco_running_config_parser_reads_admin_state_description_and_the_lowest_rate() -> None:
    configs = cisco_ios.parse_configs(_transcript("cisco_ios_show_running_config.txt"))
    assert list(configs) == [
        "GigabitEthernet0/1",
        "GigabitEthernet0/2",
        "GigabitEthernet0/3",
        "GigabitEthernet0/25",
        "Vlan1",
    ]
    first, second, third = (configs[f"GigabitEthernet0/{n}"] for n in (1, 2, 3))
    assert (first.admin_up, first.alias, first.rate_kbps) == (True, "cust-1001 flat 12", 20480)
    assert len(first.rate_lines) == 2
    assert (second.admin_up, second.alias, second.rate_kbps, second.rate_lines) == (True, "", None, ())
    assert (third.admin_up, third.alias, third.rate_kbps) == (False, "cust-1003", 8000)


def test_cisco_interfaces_status_parser_maps_statuses_to_link_state() -> None:
    oper = cisco_ios.parse_status(_transcript("cisco_ios_show_interfaces_status.txt"))
    assert oper == {
        "GigabitEthernet0/1": True,
        "GigabitEthernet0/2": False,
        "GigabitEthernet0/3": False,
        "GigabitEthernet0/4": False,  # err-disabled, after a name that fills its column
        "GigabitEthernet0/5": True,
        "GigabitEthernet0/6": False,
        "GigabitEthernet0/25": True,
        "GigabitEthernet0/26": False,
    }


def test_cisco_error_line_is_the_percent_line_not_a_syslog_message() -> None:
    error = cisco_ios.error_line(_transcript("cisco_ios_config_error.txt"))
    assert error == "% Invalid input detected at '^' marker."
    assert cisco_ios.error_line("%LINK-3-UPDOWN: Interface GigabitEthernet0/2, changed state to down") is None
    assert cisco_ios.error_line("switch1(config-if)#shutdown\nswitch1(config-if)#") is None


# ------------------------------------------------------------------ Huawei VRP


def test_huawei_block_unblock_and_show_commands() -> None:
    assert huawei.block_commands("GigabitEthernet0/0/3") == ["interface GigabitEthernet0/0/3", "shutdown"]
    assert huawei.unblock_commands("GE0/0/3") == ["interface GE0/0/3", "undo shutdown"]
    assert huawei.interface_name("GE0/0/3") == "GigabitEthernet0/0/3"
    assert huawei.show_interface_config("GigabitEthernet0/0/3") == (
        "display current-configuration interface GigabitEthernet0/0/3"
    )


def test_huawei_rate_limit_sets_each_direction_that_differs_and_undoes_on_removal() -> None:
    name = "GigabitEthernet0/0/3"
    current = _config(name, "qos lr outbound cir 10240 cbs 1280000")
    assert huawei.rate_commands(name, current, 20480) == [
        f"interface {name}",
        "qos lr inbound cir 20480",
        "qos lr outbound cir 20480",
    ]
    same = _config(name, "qos lr inbound cir 20480 cbs 2560000", "qos lr outbound cir 20480 cbs 2560000")
    assert huawei.rate_commands(name, same, 20480) == []
    assert huawei.rate_commands(name, current, None) == [f"interface {name}", "undo qos lr outbound"]
    assert huawei.rate_commands(name, _config(name), None) == []
    with pytest.raises(ValueError, match="64 kbit/s"):
        huawei.rate_commands(name, current, 32)


def test_huawei_current_configuration_parser() -> None:
    configs = huawei.parse_configs(_transcript("huawei_display_current_configuration.txt"))
    assert "GigabitEthernet0/0/1" in configs and "Vlanif110" in configs and "NULL0" in configs
    first, second, third = (configs[f"GigabitEthernet0/0/{n}"] for n in (1, 2, 3))
    assert (first.admin_up, first.alias, first.rate_kbps) == (True, "cust-2001 flat 7", 20480)
    assert (second.admin_up, second.alias, second.rate_kbps) == (True, "", None)
    assert (third.admin_up, third.alias, third.rate_kbps) == (False, "cust-2003", 10240)


def test_huawei_interface_brief_parser_reads_the_phy_column() -> None:
    oper = huawei.parse_status(_transcript("huawei_display_interface_brief.txt"))
    assert oper["GigabitEthernet0/0/1"] is True
    assert oper["GigabitEthernet0/0/2"] is False
    assert oper["GigabitEthernet0/0/3"] is False  # *down: administratively down
    assert oper["GigabitEthernet0/0/4"] is False  # ^down: standby
    assert oper["GigabitEthernet0/0/23"] is True  # an Eth-Trunk member, indented
    assert oper["Eth-Trunk1"] is True and oper["Vlanif110"] is True


def test_huawei_error_line_is_the_error_line_not_a_warning() -> None:
    error = huawei.error_line(_transcript("huawei_config_error.txt"))
    assert error == "Error: Wrong parameter found at '^' position."
    assert huawei.error_line("Warning: The configuration will take effect after a restart.") is None
