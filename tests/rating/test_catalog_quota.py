"""A tariff version's prepaid quota unit in the catalog: ``quota = { volume = ..., seconds = ... }``.

Read and checked with the file, key path and expectation in every message; written back by the
dump so that it loads equal; part of the version's fingerprint (and left out of it when absent,
so the fingerprints of versions without one did not change).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.catalog import Catalog, CatalogError, dump_catalog, load_catalog
from rating.quota import DEFAULT_QUOTA_UNIT, QuotaUnit
from rating.tariff import canonical, version_fingerprint
from rating.traffic import MB

EXAMPLE = Path(__file__).resolve().parents[2] / "conf" / "tariffs" / "example.toml"

PAYG = """
[[tariffs]]
code = "PAYG"
name = "Pay as you go"
kind = "internet"

[[tariffs.versions]]
version = 1
effective_from = 2025-01-01
currency = "EUR"
billing_mode = "prepaid"
{quota}

[[tariffs.versions.usage.prices]]
direction = "in"
price = "0.15"
unit = "100 MB"

[[tariffs.versions.usage.prices]]
direction = "out"
price = "0.15"
unit = "100 MB"
"""
TIME = """
[[tariffs.versions.usage.time_prices]]
price_per_minute = "0.01"
"""
V = "t.toml: tariffs[0].versions[0]"
VOLUME_EXPECTED = (
    'a volume such as "100 GB", "1 MiB" or an integer of bytes (units: TB, TiB, GB, GiB, MB, MiB, kB, KiB, B)'
)


def load(text: str) -> Catalog:
    return load_catalog(text, source="t.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def payg(quota: str = "", more: str = "") -> str:
    return PAYG.format(quota=quota) + more


def round_trips(catalog: Catalog) -> None:
    text = dump_catalog(catalog)
    assert load_catalog(text, source="dump.toml") == catalog
    assert dump_catalog(load_catalog(text, source="dump.toml")) == text


def test_a_prepaid_usage_version_sets_its_quota_unit_and_the_dump_keeps_it() -> None:
    catalog = load(payg('quota = { volume = "20 MB", seconds = 300 }', more=TIME))
    assert catalog.tariff("PAYG").version(1).quota == QuotaUnit(octets=20 * MB, seconds=300)
    assert 'quota = { volume = "20 MB", seconds = 300 }' in dump_catalog(catalog)
    round_trips(catalog)


def test_the_quota_may_be_a_table_of_its_own_and_a_volume_a_plain_number_of_bytes() -> None:
    catalog = load(payg("[tariffs.versions.quota]\nvolume = 1234\n"))
    assert catalog.tariff("PAYG").version(1).quota == QuotaUnit(octets=1234)
    round_trips(catalog)


def test_without_quota_the_version_has_none_and_the_daemons_default_applies() -> None:
    version = load(payg()).tariff("PAYG").version(1)
    assert version.quota is None
    assert QuotaUnit(octets=100 * MB, seconds=600) == DEFAULT_QUOTA_UNIT
    assert "quota" not in canonical(version)  # so fingerprints of versions without one are unchanged
    assert "quota" not in dump_catalog(load(payg()))


@settings(max_examples=50, deadline=None)
@given(octets=st.integers(1, 10**18), seconds=st.integers(1, 86_400), timed=st.booleans())
def test_any_quota_unit_loads_back_equal_from_its_dump(octets: int, seconds: int, timed: bool) -> None:
    tariff = load(payg(more=TIME if timed else "")).tariff("PAYG")
    unit = QuotaUnit(octets=octets, seconds=seconds if timed else 0)
    versions = (replace(tariff.version(1), quota=unit),)
    round_trips(Catalog(tariffs=(replace(tariff, versions=versions),)))


def test_the_quota_unit_is_part_of_the_versions_fingerprint() -> None:
    def fingerprint(quota: str) -> str:
        return load(payg(quota)).fingerprints()["PAYG", 1]

    unset, fifty = fingerprint(""), fingerprint('quota = { volume = "50 MB" }')
    assert len({unset, fifty, fingerprint('quota = { volume = "20 MB" }')}) == 3
    assert fingerprint("quota = { volume = 50_000_000 }") == fifty  # equal values, however written
    catalog = load(payg('quota = { volume = "50 MB" }'))
    tariff = catalog.tariff("PAYG")
    assert version_fingerprint(tariff, tariff.version(1)) == fifty


def test_the_example_documents_the_quota_on_its_metered_tariff() -> None:
    catalog = load_catalog(EXAMPLE.read_text(encoding="utf-8"), source="example.toml")
    assert catalog.tariff("METERED").version(1).quota == QuotaUnit(octets=100 * MB)
    assert all(
        v.quota is None for t in catalog.tariffs if t.code != "METERED" for v in t.versions
    )  # the others keep their fingerprints


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            payg("quota = { seconds = 300 }"),
            [  # in file order: the key written, then the one missing
                f"{V}.quota.seconds: the usage has no time prices ([[...usage.time_prices]]), so it would"
                " never count; remove it",
                f"{V}.quota.volume: required: the usage has volume prices ([[...usage.prices]]);"
                f" expected {VOLUME_EXPECTED}",
            ],
            id="the part priced is missing, the part not priced is there",
        ),
        pytest.param(
            payg('quota = { volume = "20 MB" }', more=TIME),
            [
                f"{V}.quota.seconds: required: the usage has time prices ([[...usage.time_prices]]);"
                " expected an integer from 1 to 86400 (seconds)"
            ],
            id="time priced but no seconds",
        ),
        pytest.param(
            payg('quota = { volume = "0 MB" }'),
            [f'{V}.quota.volume: expected {VOLUME_EXPECTED}, got "0 MB" (a string)'],
            id="empty volume",
        ),
        pytest.param(
            payg('quota = { volume = "20 MB", seconds = 0 }', more=TIME),
            [f"{V}.quota.seconds: expected an integer from 1 to 86400 (seconds), got 0 (an integer)"],
            id="no seconds",
        ),
        pytest.param(
            payg('quota = "100 MB"'),
            [
                f'{V}.quota: expected a table such as {{ volume = "100 MB" }} or'
                f' {{ volume = "100 MB", seconds = 600 }}, got "100 MB" (a string)'
            ],
            id="not a table",
        ),
        pytest.param(
            payg('quota = { volume = "20 MB", octets = 5 }'),
            [f"{V}.quota.octets: unknown key; known keys here: volume, seconds"],
            id="unknown key",
        ),
        pytest.param(
            payg('quota = { volume = "20 MB" }').replace(
                'billing_mode = "prepaid"', 'billing_mode = "postpaid"'
            ),
            [f'{V}.quota: only for billing_mode = "prepaid" (postpaid usage reserves nothing); remove it'],
            id="postpaid",
        ),
        pytest.param(
            payg('quota = { volume = "20 MB" }').split("\n[[tariffs.versions.usage.prices]]")[0]
            + 'fee = "9.90"\nperiod = "monthly"\n',
            [f"{V}.quota: only with usage prices ([tariffs.versions.usage]); remove it"],
            id="a flat fee",
        ),
    ],
)
def test_a_wrong_quota_is_reported_with_its_key_path_and_expectation(text: str, expected: list[str]) -> None:
    assert problems(text) == expected
