"""The tariff catalog as TOML: load and validate a whole file at once, and dump it back.

``load_catalog(text, source=...)`` checks everything before returning anything: types and
shapes of every key (money as quoted decimals or integers, never floats), unknown keys,
duplicate codes, version numbers and effective dates that overlap or go backwards, price
matrix cells that would tie, and references between tariffs, bundles and promotions. Every
problem is collected and raised together in one :class:`CatalogError`, one line each, as
``source: key.path: expectation`` (the style of ``billing/config.py``), in file order. All or
nothing: a file with one problem imports nothing.

Category and region names in the matrix are operator dictionaries held in the database; they
are checked there, at import, not here (this module has no I/O). ``dump_catalog`` writes a
catalog back as TOML such that ``load_catalog(dump_catalog(c)) == c``.

The shape of the file is documented key by key in ``conf/tariffs/example.toml``. The work is
split by concern: ``catalog_reader`` (typed key access and problem collection),
``catalog_tariffs``, ``catalog_usage`` and ``catalog_offers`` (one reader per part of the
file) and ``catalog_writer`` (the dump).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from rating.bundle import Bundle
from rating.catalog_offers import References, read_bundle, read_promotion
from rating.catalog_reader import CatalogError, CatalogProblem, Problems, Table
from rating.catalog_tariffs import read_tariff
from rating.catalog_writer import dump_catalog
from rating.phases import Promotion
from rating.tariff import Tariff, TariffVersion, version_fingerprint

__all__ = ["Catalog", "CatalogError", "CatalogProblem", "dump_catalog", "load_catalog"]


@dataclass(frozen=True)
class Catalog:
    """Tariffs, bundles and promotions as loaded from one file; look-ups by code."""

    tariffs: tuple[Tariff, ...] = ()
    bundles: tuple[Bundle, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    _index: dict[tuple[str, str], Any] = field(init=False, repr=False, compare=False)
    _fingerprints: dict[tuple[str, int], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], Any] = {}
        for kind, items in (("tariff", self.tariffs), ("bundle", self.bundles), ("promo", self.promotions)):
            for item in items:
                if (kind, item.code) in index:
                    raise ValueError(f"duplicate {kind} code {item.code!r}")
                index[kind, item.code] = item
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_fingerprints", {})

    def tariff(self, code: str) -> Tariff:
        """The tariff ``code`` (``KeyError`` if unknown)."""
        return self._lookup("tariff", code)

    def bundle(self, code: str) -> Bundle:
        """The bundle ``code`` (``KeyError`` if unknown)."""
        return self._lookup("bundle", code)

    def promotion(self, code: str) -> Promotion:
        """The promotion ``code`` (``KeyError`` if unknown)."""
        return self._lookup("promo", code)

    def _lookup(self, kind: str, code: str) -> Any:
        try:
            return self._index[kind, code]
        except KeyError:
            raise KeyError(f"unknown {kind} {code!r}") from None

    def fingerprint(self, tariff: Tariff, version: TariffVersion) -> str:
        """:func:`rating.tariff.version_fingerprint`, computed once per version."""
        key = (tariff.code, version.number)
        if key not in self._fingerprints:
            self._fingerprints[key] = version_fingerprint(tariff, version)
        return self._fingerprints[key]

    def fingerprints(self) -> dict[tuple[str, int], str]:
        """Every version's fingerprint by ``(tariff code, version number)``, for the importer."""
        return {(t.code, v.number): self.fingerprint(t, v) for t in self.tariffs for v in t.versions}


# --------------------------------------------------------------------------- entry point


def load_catalog(text: str, *, source: str) -> Catalog:
    """Parse and validate a whole catalog; raise :class:`CatalogError` listing every problem."""
    problems = Problems(source)
    data = _parse(text, problems)
    if data is None:
        raise CatalogError(problems.in_document_order())
    document = Table(data, "", problems)
    tariff_tables = document.tables("tariffs") or []
    bundle_tables = document.tables("bundles") or []
    promotion_tables = document.tables("promotions") or []
    document.done()

    seen: dict[str, str] = {}
    tariffs = [read_tariff(t, seen) for t in tariff_tables]
    references = References(set(seen), {t.code: t for t in tariffs if t is not None})
    seen = {}
    bundles = [read_bundle(t, seen, references) for t in bundle_tables]
    seen = {}
    promotions = [read_promotion(t, seen, references) for t in promotion_tables]
    if problems:
        raise CatalogError(problems.in_document_order())
    return Catalog(
        tariffs=tuple(t for t in tariffs if t is not None),
        bundles=tuple(b for b in bundles if b is not None),
        promotions=tuple(p for p in promotions if p is not None),
    )


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _parse(text: str, problems: Problems) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        where = f" at line {match['line']}, column {match['column']}" if match else ""
        problems.add((), "", f"invalid TOML{where}: {match['what'] if match else exc}")
        return None
