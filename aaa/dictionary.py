"""RADIUS dictionaries: FreeRADIUS-format files compiled into an immutable lookup table.

Why: operators and NAS vendors describe attributes in FreeRADIUS-format dictionary files,
so we read those (``conf/dictionaries/dictionary`` plus the operator's own files). pyrad's
parser does the reading; this module turns its mutable, pyrad-specific objects into frozen
``AttributeDef`` records keyed both by name and by wire key, so that nothing of pyrad leaks
past start-up and the hot path only does dictionary look-ups.

Wire keys: a standard attribute is its type code (``1`` for User-Name); a vendor attribute
carried in Vendor-Specific (type 26) is ``(vendor_id, vendor_type)``, e.g. ``(14988, 8)``
for Mikrotik-Rate-Limit.  These are the keys ``aaa.codec`` uses.

Sub-attributes of TLVs are not compiled (none of our dictionaries define any); a TLV
attribute itself is kept with data type ``tlv`` and its value handled as octets.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from pyrad.dictionary import Dictionary as _PyradDictionary
from pyrad.dictionary import ParseError as _PyradParseError

__all__ = [
    "MAIN_FILE",
    "AttributeDef",
    "AttributeKey",
    "DataType",
    "DictionaryError",
    "RadiusDictionary",
    "compile_dictionary",
    "load_dictionaries",
]

_log = logging.getLogger(__name__)

MAIN_FILE = "dictionary"
"""Name of the file, in the dictionary directory, that ``$INCLUDE``s the others."""

AttributeKey = int | tuple[int, int]
"""``type`` for a standard attribute, ``(vendor_id, vendor_type)`` for a vendor one."""


class DataType(StrEnum):
    """Data types of the FreeRADIUS dictionary format that pyrad 2.6 accepts."""

    STRING = "string"
    OCTETS = "octets"
    IPADDR = "ipaddr"
    IPV6ADDR = "ipv6addr"
    IPV6PREFIX = "ipv6prefix"
    IFID = "ifid"
    INTEGER = "integer"
    SIGNED = "signed"
    SHORT = "short"
    BYTE = "byte"
    INTEGER64 = "integer64"
    DATE = "date"
    ETHER = "ether"
    ABINARY = "abinary"
    TLV = "tlv"


_NUMERIC_TYPES = frozenset(
    {DataType.INTEGER, DataType.SIGNED, DataType.SHORT, DataType.BYTE, DataType.INTEGER64, DataType.DATE}
)
# how pyrad encodes named values (VALUE lines) of the numeric types
_NUMERIC_FORMATS = {
    DataType.INTEGER: "!I",
    DataType.SIGNED: "!i",
    DataType.SHORT: "!H",
    DataType.BYTE: "!B",
    DataType.INTEGER64: "!Q",
    DataType.DATE: "!I",
}


class DictionaryError(Exception):
    """A dictionary file is missing or cannot be parsed; says which file and line."""

    def __init__(self, message: str, file: str = "", line: int = -1) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}({line}): " if file and line >= 0 else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True, slots=True)
class AttributeDef:
    """One attribute of the dictionary.

    ``code`` is the attribute type for a standard attribute and the vendor type for a
    vendor attribute (then ``vendor_id`` is non-zero).  ``encrypt`` is FreeRADIUS's
    ``encrypt=`` flag: 1 User-Password hiding (RFC 2865 §5.2), 2 Tunnel-Password salt
    (RFC 2868 §3.5), 3 Ascend secret; 0 for none.  ``values`` maps the names of VALUE
    lines to numbers; ``value_names`` is the reverse (for several names of one number,
    the last one defined).
    """

    name: str
    code: int
    data_type: DataType
    vendor_id: int = 0
    vendor_name: str = ""
    encrypt: int = 0
    has_tag: bool = False
    values: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    value_names: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> AttributeKey:
        """The wire key: the type code, or ``(vendor_id, vendor_type)``."""
        return (self.vendor_id, self.code) if self.vendor_id else self.code

    @property
    def is_vendor_specific(self) -> bool:
        return self.vendor_id != 0


@dataclass(frozen=True, slots=True)
class RadiusDictionary:
    """Immutable attribute table, built by ``load_dictionaries`` or ``compile_dictionary``.

    Look-ups by name are exact first, then case-insensitive (FreeRADIUS treats names
    case-insensitively, and so may operators' configuration files).
    """

    by_name: Mapping[str, AttributeDef]
    by_key: Mapping[AttributeKey, AttributeDef]
    vendors: Mapping[str, int]
    vendor_names: Mapping[int, str]
    skipped: frozenset[str] = frozenset()
    _by_folded_name: Mapping[str, AttributeDef] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.by_name)

    def __iter__(self) -> Iterator[AttributeDef]:
        return iter(self.by_name.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __getitem__(self, name: str) -> AttributeDef:
        return self.attribute(name)

    def find(self, name: str) -> AttributeDef | None:
        """The attribute of that name (case-insensitive fallback), or None."""
        found = self.by_name.get(name)
        if found is None:
            found = self._by_folded_name.get(name.casefold())
        return found

    def attribute(self, name: str) -> AttributeDef:
        """The attribute of that name; ``KeyError`` naming it if the dictionary lacks it."""
        found = self.find(name)
        if found is None:
            raise KeyError(f"attribute {name!r} is not in the RADIUS dictionary")
        return found

    def lookup(self, key: AttributeKey) -> AttributeDef | None:
        """The attribute of a wire key (``1``, ``(14988, 8)``), or None if unknown."""
        return self.by_key.get(key)

    def vendor_id(self, name: str) -> int:
        """The enterprise number of a vendor; ``KeyError`` if unknown."""
        try:
            return self.vendors[name]
        except KeyError:
            raise KeyError(f"vendor {name!r} is not in the RADIUS dictionary") from None


def load_dictionaries(directory: Path, extra: Sequence[Path] = ()) -> RadiusDictionary:
    """Read ``directory/dictionary`` (and what it ``$INCLUDE``s), then each ``extra`` file.

    Later definitions replace earlier ones, so an operator file can add vendors and
    attributes or redefine one.  Raises ``DictionaryError`` for a missing or unparsable
    file, naming the file and line.
    """
    files = [Path(directory) / MAIN_FILE, *(Path(p) for p in extra)]
    for path in files:
        if not path.is_file():
            raise DictionaryError("dictionary file not found", file=str(path))
    parsed = _PyradDictionary()
    # pyrad warns about skipped attributes on its logger; we report them in .skipped
    for path in files:
        try:
            parsed.ReadDictionary(str(path))
        except _PyradParseError as exc:
            message = exc.msg or "parse error"
            raise DictionaryError(message, file=exc.file or str(path), line=exc.line) from exc
        except OSError as exc:  # an $INCLUDEd file that is missing
            raise DictionaryError(exc.strerror or str(exc), file=exc.filename or str(path)) from exc
    return compile_dictionary(parsed)


def compile_dictionary(parsed: _PyradDictionary) -> RadiusDictionary:
    """Turn a parsed pyrad ``Dictionary`` into a ``RadiusDictionary``."""
    vendor_names: dict[int, str] = {}
    vendors: dict[str, int] = {}
    for name, vendor_id in parsed.vendors.forward.items():
        if name:
            vendors[name] = vendor_id
            vendor_names[vendor_id] = name

    by_name: dict[str, AttributeDef] = {}
    by_key: dict[AttributeKey, AttributeDef] = {}
    for name, attr in parsed.attributes.items():
        if attr.is_sub_attribute:
            continue
        data_type = DataType(attr.type)
        vendor_id = vendors.get(attr.vendor, 0) if attr.vendor else 0
        values, value_names = _named_values(data_type, attr.values.forward)
        definition = AttributeDef(
            name=name,
            code=attr.code,
            data_type=data_type,
            vendor_id=vendor_id,
            vendor_name=attr.vendor or "",
            encrypt=attr.encrypt,
            has_tag=attr.has_tag,
            values=MappingProxyType(values),
            value_names=MappingProxyType(value_names),
        )
        by_name[name] = definition
        # a later definition of the same code replaces the earlier one, as in pyrad
        by_key[definition.key] = definition

    # drop names whose code was taken over by a later definition
    by_name = {name: d for name, d in by_name.items() if by_key.get(d.key) is d}
    folded: dict[str, AttributeDef] = {}
    for name, definition in by_name.items():
        folded.setdefault(name.casefold(), definition)
    return RadiusDictionary(
        by_name=MappingProxyType(by_name),
        by_key=MappingProxyType(by_key),
        vendors=MappingProxyType(vendors),
        vendor_names=MappingProxyType(vendor_names),
        skipped=frozenset(parsed.skipped_attributes),
        _by_folded_name=MappingProxyType(folded),
    )


def _named_values(data_type: DataType, encoded: Mapping[str, bytes]) -> tuple[dict[str, int], dict[int, str]]:
    """pyrad stores VALUE numbers encoded for the wire; decode them back to ints."""
    if data_type not in _NUMERIC_TYPES:
        if encoded:
            _log.debug("ignoring VALUE names of non-numeric attribute type %s", data_type)
        return {}, {}
    fmt = _NUMERIC_FORMATS[data_type]
    values = {name: struct.unpack(fmt, raw)[0] for name, raw in encoded.items()}
    names = {number: name for name, number in values.items()}
    return values, names
