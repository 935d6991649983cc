"""Load and validate the billing TOML configuration.

The file (see ``conf/billing.toml`` for every key, documented) is parsed with :mod:`tomllib`
and checked against a small declarative schema: one :class:`Key` spec per key, walked by one
validator. Every problem is collected and reported together in a :class:`ConfigError`, each
naming the file, the dotted key and what was expected, so an operator fixes a file in one go
instead of one restart per typo.

Secrets (database URL and password) may be written inline, or as ``{ env = "VAR" }`` or
``{ file = "path" }``. They are held in :class:`Secret`, which never shows its value in
``repr()``, ``str()``, logs or :meth:`Config.to_public_dict`; only
:meth:`Database.sqlalchemy_url` reveals it, to hand it to the database driver.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hmac
import json
import math
import os
import re
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from aaa.settings import (
    COA_NAK_ACTIONS,
    DEFAULT_COA_PORTS,
    DEGRADED_MODES,
    IDENTIFICATION_METHODS,
    STATUS_ACTIONS,
    VENDORS,
    AaaSettings,
    CategoryPolicy,
    Listen,
    NasClient,
    WalledGarden,
)
from billing.payment_settings import BankSettings, PaymentSettings
from billing.provisioning_settings import ProvisioningSettings, SwitchCredentials

__all__ = [
    "CURRENCY_MINOR_UNITS",
    "SCHEMA",
    "SYSTEM_CONFIG_PATH",
    "CliSettings",
    "Config",
    "ConfigError",
    "Database",
    "IspSettings",
    "LoggingSettings",
    "Problem",
    "Secret",
    "default_config_path",
    "load_config",
]

MASK = "********"
SYSTEM_CONFIG_PATH = Path("/etc/billing/billing.toml")
"""Where an installed server looks for its config when ``$BILLING_CONFIG`` is not set."""

CURRENCY_MINOR_UNITS: Mapping[str, int] = types.MappingProxyType(
    {
        "AMD": 2, "AZN": 2, "BHD": 3, "BYN": 2, "CHF": 2, "CZK": 2, "DKK": 2, "EUR": 2,
        "GBP": 2, "GEL": 2, "JPY": 0, "KGS": 2, "KWD": 3, "KZT": 2, "MDL": 2, "NOK": 2,
        "PLN": 2, "RUB": 2, "SEK": 2, "TRY": 2, "UAH": 2, "USD": 2, "UZS": 2,
    }
)  # fmt: skip
"""ISO 4217 minor units (digits after the decimal point) of the currencies we bill in.

Money is rounded to this many places at invoice lines and payments; a currency missing here
is rejected rather than guessed.
"""


# --------------------------------------------------------------------------- public types


class Secret:
    """A string that must not leak: masked in ``repr``/``str``, compared in constant time.

    Not a dataclass on purpose, so :func:`dataclasses.asdict` on a config copies the object
    (still masked) instead of exposing its value as a field.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def reveal(self) -> str:
        """Return the secret value; call only where it is handed to the peer that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("Secret values are not picklable")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file: where (file, dotted key) and what was expected."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class ConfigError(Exception):
    """The config could not be loaded; :attr:`problems` lists every reason, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class IspSettings:
    """Who the operator is: name on invoices, the billing currency and the local time zone."""

    name: str
    currency: str
    time_zone: str

    @property
    def minor_units(self) -> int:
        """Digits after the decimal point of :attr:`currency` (EUR 2, JPY 0, KWD 3)."""
        return CURRENCY_MINOR_UNITS[self.currency]

    @property
    def tzinfo(self) -> ZoneInfo:
        """The time zone billing periods are computed in."""
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Database:
    """Where the billing database is and how the connection pool behaves."""

    url: Secret
    password: Secret | None
    pool_size: int
    pool_timeout_s: float
    statement_timeout_ms: int
    echo: bool

    def sqlalchemy_url(self) -> str:
        """The full SQLAlchemy URL, password injected: the one place the secret is revealed."""
        url = self.url.reveal()
        if self.password is None:
            return url
        return make_url(url).set(password=self.password.reveal()).render_as_string(hide_password=False)


@dataclass(frozen=True)
class LoggingSettings:
    """How much the server logs and in which format."""

    level: str
    format: str


@dataclass(frozen=True)
class CliSettings:
    """Defaults of the admin CLI."""

    page_size: int


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, as loaded from :attr:`source`."""

    isp: IspSettings
    database: Database
    logging: LoggingSettings
    cli: CliSettings
    aaa: AaaSettings
    payments: PaymentSettings
    provisioning: ProvisioningSettings
    source: Path

    def to_public_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dump with every secret rendered as ``"********"``."""
        return {
            "source": str(self.source),
            **{s.name: _public(getattr(self, s.name)) for s in SCHEMA},
        }


def _public(value: object) -> Any:
    """Turn a config value into JSON-ready data, masking secrets."""
    if isinstance(value, Secret | bytes):  # resolved secrets handed to aaa are bytes
        return MASK
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: MASK if f.metadata.get("secret") and getattr(value, f.name) is not None
            else _public(getattr(value, f.name))
            for f in dataclasses.fields(value)
        }  # fmt: skip
    if isinstance(value, tuple | list):
        return [_public(v) for v in value]
    if isinstance(value, Path | IPv4Network | IPv6Network):
        return str(value)
    return value


# --------------------------------------------------------------------------- the schema


class Kind(enum.Enum):
    """The TOML type a key accepts."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    SECRET = "secret"
    LIST = "list"
    """An array of strings (each one of ``choices`` when those are given)."""
    TABLES = "tables"
    """An array of tables (``[[name]]``), each checked against ``item``."""


class _Rejected(ValueError):
    """Raised by a :attr:`Key.convert` hook; the text, if any, is added to the message."""


@dataclass(frozen=True)
class Key:
    """Spec of one key: its type, range or choices, default, and an optional extra rule.

    ``convert`` receives the type-checked value (for secrets: the raw string) and returns the
    value to store, or raises :class:`_Rejected`; ``expected`` then overrides the generated
    description of what the key accepts.
    """

    kind: Kind
    required: bool = False
    default: Any = None
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None
    expected: str = ""
    item: Section | None = None

    def describe(self) -> str:
        """What the key accepts, in words, for error messages."""
        if self.expected:
            return self.expected
        if self.kind is Kind.LIST:
            return "an array of strings" + (
                " from " + ", ".join(json.dumps(c) for c in self.choices) if self.choices else ""
            )
        if self.kind is Kind.TABLES:
            return "an array of tables"
        if self.kind is Kind.BOOL:
            return "true or false"
        if self.kind is Kind.CHOICE:
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        if self.kind is Kind.SECRET:
            return 'a non-empty string, { env = "VAR_NAME" } or { file = "/path/to/file" }'
        if self.kind is Kind.STR:
            return "a non-empty string"
        noun = "an integer" if self.kind is Kind.INT else "a number"
        text = f"{noun} from {_num(self.low)} to {_num(self.high)}"
        return f"{text} ({self.unit})" if self.unit else text


@dataclass(frozen=True)
class Section:
    """Spec of one ``[table]``: its keys, whether it must be present, what it builds."""

    name: str
    keys: Mapping[str, Key]
    build: Callable[..., Any]
    required: bool = False
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None
    """Cross-key rule: receives the converted values, returns ``(key, message)`` pairs."""


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _currency(value: str) -> str:
    if value not in CURRENCY_MINOR_UNITS:
        raise _Rejected
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _Rejected from exc
    return value


_URL_SCHEMES = ("sqlite:///", "postgresql+psycopg://", "postgresql://")


def _database_url(value: str) -> str:
    if not value.startswith(_URL_SCHEMES):
        raise _Rejected
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    try:
        make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise _Rejected("not a parseable URL") from exc
    return value


def _check_database(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The password goes with PostgreSQL only, and only once."""
    url, password = values.get("url"), values.get("password")
    if not isinstance(url, Secret) or password is None:
        return []
    parsed = make_url(url.reveal())
    if parsed.get_backend_name() == "sqlite":
        return [("password", "given, but database.url is SQLite, which takes no password; remove it")]
    if parsed.password is not None:
        return [("password", "given, but database.url already contains a password; keep only one")]
    return []


def _network(value: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(value, strict=True)
    except ValueError as exc:
        raise _Rejected(str(exc)) from None


def _nas_client(
    *, secret: Secret, address: IPv4Network | IPv6Network, coa_port: int | None, **values: Any
) -> NasClient:
    if coa_port is None:
        coa_port = DEFAULT_COA_PORTS.get(values["vendor"], 3799)
    return NasClient(secret=secret.reveal().encode(), network=address, coa_port=coa_port, **values)


def _aaa(
    *,
    listen_address: str,
    auth_port: int,
    acct_port: int,
    receive_buffer_bytes: int,
    walled_garden_pool: str,
    walled_garden_down_kbps: int,
    walled_garden_up_kbps: int,
    walled_garden_session_timeout_s: int,
    out_of_funds: str,
    suspended: str,
    blocked: str,
    category_policy: tuple[tuple[str, CategoryPolicy], ...] | None,
    nas: tuple[NasClient, ...] | None,
    dictionary_dir: str,
    extra_dictionaries: tuple[str, ...],
    journal_dir: str,
    **values: Any,
) -> AaaSettings:
    return AaaSettings(
        listen=Listen(listen_address, auth_port, acct_port, receive_buffer_bytes),
        nas=nas or (),
        dictionary_dir=Path(dictionary_dir),
        extra_dictionaries=tuple(Path(p) for p in extra_dictionaries),
        journal_dir=Path(journal_dir),
        walled_garden=WalledGarden(
            walled_garden_pool,
            walled_garden_down_kbps,
            walled_garden_up_kbps,
            walled_garden_session_timeout_s,
        ),
        default_policy=CategoryPolicy(out_of_funds, suspended, blocked),
        policies=category_policy or (),
        **values,
    )


def _check_aaa(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if values["auth_port"] == values["acct_port"] != 0:
        problems.append(("acct_port", "must differ from auth_port"))
    names = [c.name for c in values["nas"] or ()]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("nas", f"NAS name {name!r} is used more than once"))
    networks = [c.network for c in values["nas"] or ()]
    for network in sorted({str(n) for n in networks if networks.count(n) > 1}):
        problems.append(("nas", f"address {network} is given to more than one NAS"))
    categories = [c for c, _ in values["category_policy"] or ()]
    for category in sorted({c for c in categories if categories.count(c) > 1}):
        problems.append(("category_policy", f"category {category!r} has more than one policy"))
    return problems


_PORT = {"low": 1, "high": 65535}
_LISTEN_PORT = {"low": 0, "high": 65535, "unit": "0 = any free port, logged at start"}
_NAS = Section(
    "nas",
    {
        "name": Key(Kind.STR, required=True),
        "address": Key(
            Kind.STR,
            required=True,
            convert=_network,
            expected='an IP address or network such as "10.0.0.1" or "10.1.0.0/16"',
        ),
        "secret": Key(Kind.SECRET, required=True),
        "vendor": Key(Kind.CHOICE, default="generic", choices=VENDORS),
        "coa_port": Key(Kind.INT, default=None, unit="default 3799, MikroTik 1700", **_PORT),
        "coa_nak": Key(Kind.CHOICE, default="disconnect", choices=COA_NAK_ACTIONS),
        "require_message_authenticator": Key(Kind.BOOL, default=True),
        "identification": Key(Kind.LIST, default=("login", "mac", "port"), choices=IDENTIFICATION_METHODS),
        "mac_from": Key(
            Kind.LIST, default=("Calling-Station-Id",), choices=("Calling-Station-Id", "User-Name")
        ),
        "strip_realm": Key(Kind.BOOL, default=False),
    },
    build=_nas_client,
)
_CATEGORY_POLICY = Section(
    "category_policy",
    {
        "category": Key(Kind.STR, required=True),
        "out_of_funds": Key(Kind.CHOICE, default="walled_garden", choices=STATUS_ACTIONS),
        "suspended": Key(Kind.CHOICE, default="walled_garden", choices=STATUS_ACTIONS),
        "blocked": Key(Kind.CHOICE, default="reject", choices=STATUS_ACTIONS),
    },
    build=lambda category, **actions: (category, CategoryPolicy(**actions)),
)

_BANK_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _bank_code(value: str) -> str:
    if not _BANK_CODE.match(value) or value == "cashier":
        raise _Rejected()
    return value


def _loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _payments(
    *,
    tls_certificate: str | None,
    tls_private_key: str | None,
    bank: tuple[BankSettings, ...] | None,
    **values: Any,
) -> PaymentSettings:
    return PaymentSettings(
        tls_certificate=Path(tls_certificate) if tls_certificate else None,
        tls_private_key=Path(tls_private_key) if tls_private_key else None,
        banks=bank or (),
        **values,
    )


def _check_payments(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if values["plain_http"] and not _loopback(values["listen_address"]):
        problems.append(
            ("plain_http", "plain HTTP is served only on a loopback listen_address; use TLS or set false")
        )
    if (values["tls_certificate"] is None) != (values["tls_private_key"] is None):
        problems.append(("tls_private_key", "tls_certificate and tls_private_key go together"))
    for key in ("tls_certificate", "tls_private_key"):
        if values[key] is not None and not Path(values[key]).is_file():
            problems.append((key, f"no such file: {values[key]}"))
    if values["plain_http"] and values["tls_certificate"] and values["http_port"] == values["tls_port"] != 0:
        problems.append(("tls_port", "must differ from http_port"))
    codes = [b.code for b in values["bank"] or ()]
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        problems.append(("bank", f"bank code {code!r} is used more than once"))
    return problems


_BANK = Section(
    "bank",
    {
        "code": Key(
            Kind.STR,
            required=True,
            convert=_bank_code,
            expected="1 to 32 letters, digits, '_', '.', '-' (not \"cashier\")",
        ),
        "name": Key(Kind.STR, required=True),
        "password": Key(Kind.SECRET, required=True),
        "signing_key": Key(Kind.SECRET, required=True),
        "allow_from": Key(
            Kind.LIST,
            required=True,
            expected='an array of IP addresses or networks such as ["192.0.2.10", "198.51.100.0/28"]',
        ),
    },
    build=lambda allow_from, **values: BankSettings(
        allow_from=tuple(ip_network(a, strict=True) for a in allow_from), **values
    ),
    check=lambda values: [
        ("allow_from", f"not an IP address or network: {a!r}")
        for a in values["allow_from"] or ()
        if not _is_network(a)
    ],
)


def _is_network(value: str) -> bool:
    try:
        ip_network(value, strict=True)
    except ValueError:
        return False
    return True


def _ip_text(value: str) -> str:
    try:
        return str(ip_address(value))
    except ValueError:
        raise _Rejected() from None


def _credentials(**values: Any) -> SwitchCredentials:
    secrets = ("read_community", "write_community", "v3_auth_key", "v3_priv_key", "password", "enable_secret")
    for key in secrets:
        if values[key] is not None:
            values[key] = values[key].reveal()
    return SwitchCredentials(**values)


def _check_credentials(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if values["snmp_version"] == "v3" and not values["v3_user"]:
        problems.append(("v3_user", "required when snmp_version is v3"))
    if values["snmp_version"] == "v3" and values["v3_priv_key"] is not None and values["v3_auth_key"] is None:
        problems.append(("v3_auth_key", "SNMPv3 privacy needs authentication: set v3_auth_key too"))
    if (values["username"] is None) != (values["password"] is None):
        problems.append(("password", "username and password go together (SSH login)"))
    return problems


_CREDENTIALS = Section(
    "credentials",
    {
        "name": Key(Kind.STR, required=True),
        "snmp_version": Key(Kind.CHOICE, default="v2c", choices=("v2c", "v3")),
        "read_community": Key(Kind.SECRET),
        "write_community": Key(Kind.SECRET),
        "v3_user": Key(Kind.STR),
        "v3_auth_key": Key(Kind.SECRET),
        "v3_priv_key": Key(Kind.SECRET),
        "v3_auth_protocol": Key(Kind.CHOICE, default="sha", choices=("md5", "sha", "sha256", "sha512")),
        "v3_priv_protocol": Key(Kind.CHOICE, default="aes", choices=("des", "aes", "aes256")),
        "username": Key(Kind.STR),
        "password": Key(Kind.SECRET),
        "enable_secret": Key(Kind.SECRET),
    },
    build=_credentials,
    check=_check_credentials,
)
_NMS_KEYS = {
    "file": ("directory",),
    "rest": ("url", "secret"),
    "soap": ("url",),
}


def _nms_values(values: Mapping[str, Any]) -> dict[str, Any]:
    kind = values["type"]
    wanted = (
        {"name", "directory", "format"}
        if kind == "file"
        else {"name", *_NMS_KEYS[kind], "timeout_s", "retries", "backoff_s"}
    )
    out = {k: v for k, v in values.items() if k in wanted and v is not None}
    if "secret" in out:
        out["secret"] = out["secret"].reveal().encode()
    if "directory" in out:
        out["directory"] = Path(out["directory"])
    return out


def _nms(**values: Any) -> Any:
    from nms_adapters.settings import SETTINGS_BY_TYPE

    return SETTINGS_BY_TYPE[values["type"]](**_nms_values(values))


def _check_nms(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    kind = values["type"]
    missing = [k for k in _NMS_KEYS[kind] if values[k] is None]
    if missing:
        return [(k, f"required for type = {kind!r}") for k in missing]
    used = (*_NMS_KEYS[kind], "format") if kind == "file" else _NMS_KEYS[kind]
    unused = [k for k in ("directory", "format", "url", "secret") if values[k] is not None and k not in used]
    if unused:
        return [(k, f"not used by type = {kind!r}") for k in unused]
    try:
        _nms(**values)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        return [(key if key in values else "type", message or str(exc))]
    return []


_NMS = Section(
    "nms",
    {
        "type": Key(Kind.CHOICE, required=True, choices=("file", "rest", "soap")),
        "name": Key(Kind.STR, required=True),
        "directory": Key(Kind.STR, expected='a directory path (type = "file")'),
        "format": Key(Kind.CHOICE, choices=("csv", "json")),
        "url": Key(Kind.STR, expected='an http:// or https:// URL (type = "rest" or "soap")'),
        "secret": Key(Kind.SECRET),
        "timeout_s": Key(Kind.FLOAT, low=0.1, high=120.0, unit="seconds"),
        "retries": Key(Kind.INT, low=0, high=10),
        "backoff_s": Key(Kind.FLOAT, low=0.0, high=60.0, unit="seconds"),
    },
    build=_nms,
    check=_check_nms,
)


def _provisioning(
    *, credentials: tuple[SwitchCredentials, ...] | None, nms: tuple[Any, ...] | None, **values: Any
) -> ProvisioningSettings:
    return ProvisioningSettings(credentials=credentials or (), nms=nms or (), **values)


def _check_provisioning(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key, label in (("credentials", "credentials name"), ("nms", "exporter name")):
        names = [c.name for c in values[key] or ()]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append((key, f"{label} {name!r} is used more than once"))
    if values["backoff_max_s"] < values["backoff_s"]:
        problems.append(("backoff_max_s", "must be >= backoff_s"))
    if values["lease_s"] <= (values["coa_retries"] + 1) * values["coa_timeout_s"] * 2:
        problems.append(
            (
                "lease_s",
                "must exceed a task's longest try: 2 x (coa_retries + 1) x coa_timeout_s (CoA + fallback)",
            )
        )
    return problems


SCHEMA: tuple[Section, ...] = (
    Section(
        "isp",
        {
            "name": Key(Kind.STR, required=True),
            "currency": Key(
                Kind.STR,
                required=True,
                convert=_currency,
                expected="an uppercase ISO 4217 code with known minor units (one of "
                + ", ".join(sorted(CURRENCY_MINOR_UNITS))
                + ")",
            ),
            "time_zone": Key(
                Kind.STR,
                required=True,
                convert=_time_zone,
                expected='an IANA time zone name such as "Europe/Berlin" or "UTC"',
            ),
        },
        build=IspSettings,
        required=True,
    ),
    Section(
        "database",
        {
            "url": Key(
                Kind.SECRET,
                required=True,
                convert=_database_url,
                expected="a URL starting with sqlite:///, postgresql:// or postgresql+psycopg://"
                ' (inline, { env = "VAR_NAME" } or { file = "/path/to/file" })',
            ),
            "password": Key(Kind.SECRET),
            "pool_size": Key(Kind.INT, default=10, low=1, high=200),
            "pool_timeout_s": Key(Kind.FLOAT, default=30.0, low=0.1, high=300.0, unit="seconds"),
            "statement_timeout_ms": Key(
                Kind.INT, default=30_000, low=0, high=3_600_000, unit="milliseconds, 0 = no limit"
            ),
            "echo": Key(Kind.BOOL, default=False),
        },
        build=Database,
        required=True,
        check=_check_database,
    ),
    Section(
        "logging",
        {
            "level": Key(Kind.CHOICE, default="info", choices=("debug", "info", "warning", "error")),
            "format": Key(Kind.CHOICE, default="text", choices=("text", "json")),
        },
        build=LoggingSettings,
    ),
    Section(
        "cli",
        {"page_size": Key(Kind.INT, default=50, low=1, high=10_000)},
        build=CliSettings,
    ),
    Section(
        "aaa",
        {
            "listen_address": Key(Kind.STR, default="127.0.0.1"),
            "auth_port": Key(Kind.INT, default=1812, **_LISTEN_PORT),
            "acct_port": Key(Kind.INT, default=1813, **_LISTEN_PORT),
            "receive_buffer_bytes": Key(
                Kind.INT, default=4 * 1024 * 1024, low=65_536, high=256 * 1024 * 1024
            ),
            "dictionary_dir": Key(Kind.STR, default="conf/dictionaries"),
            "extra_dictionaries": Key(Kind.LIST, default=()),
            "session_timeout_s": Key(Kind.INT, default=86_400, low=60, high=31_536_000, unit="seconds"),
            "interim_interval_s": Key(Kind.INT, default=300, low=60, high=86_400, unit="seconds"),
            "reply_cache_window_s": Key(Kind.FLOAT, default=30.0, low=1.0, high=300.0, unit="seconds"),
            "journal_dir": Key(Kind.STR, default="var/journal"),
            "snapshot_poll_s": Key(Kind.FLOAT, default=1.0, low=0.1, high=300.0, unit="seconds"),
            "degraded_mode": Key(Kind.CHOICE, default="last_known", choices=DEGRADED_MODES),
            "reaper_factor": Key(Kind.INT, default=3, low=2, high=100),
            "metrics_address": Key(Kind.STR, default="127.0.0.1"),
            "metrics_port": Key(Kind.INT, default=9812, **_LISTEN_PORT),
            "walled_garden_pool": Key(Kind.STR, default="captive"),
            "walled_garden_down_kbps": Key(Kind.INT, default=512, low=8, high=10_000_000, unit="kbit/s"),
            "walled_garden_up_kbps": Key(Kind.INT, default=512, low=8, high=10_000_000, unit="kbit/s"),
            "walled_garden_session_timeout_s": Key(
                Kind.INT, default=600, low=60, high=86_400, unit="seconds"
            ),
            "out_of_funds": Key(Kind.CHOICE, default="walled_garden", choices=STATUS_ACTIONS),
            "suspended": Key(Kind.CHOICE, default="walled_garden", choices=STATUS_ACTIONS),
            "blocked": Key(Kind.CHOICE, default="reject", choices=STATUS_ACTIONS),
            "nas": Key(Kind.TABLES, item=_NAS),
            "category_policy": Key(Kind.TABLES, item=_CATEGORY_POLICY),
        },
        build=_aaa,
        check=_check_aaa,
    ),
    Section(
        "payments",
        {
            "listen_address": Key(Kind.STR, default="127.0.0.1"),
            "plain_http": Key(Kind.BOOL, default=True),
            "http_port": Key(Kind.INT, default=8080, **_LISTEN_PORT),
            "tls_port": Key(Kind.INT, default=8443, **_LISTEN_PORT),
            "tls_certificate": Key(Kind.STR, expected="a path to a PEM certificate file"),
            "tls_private_key": Key(Kind.STR, expected="a path to a PEM private key file"),
            "timestamp_window_s": Key(Kind.INT, default=300, low=10, high=3600, unit="seconds"),
            "threads": Key(Kind.INT, default=20, low=1, high=200),
            "bank": Key(Kind.TABLES, item=_BANK),
        },
        build=_payments,
        check=_check_payments,
    ),
    Section(
        "provisioning",
        {
            "worker": Key(Kind.BOOL, default=False),
            "concurrency": Key(Kind.INT, default=256, low=1, high=10_000),
            "batch": Key(Kind.INT, default=500, low=1, high=10_000),
            "poll_s": Key(Kind.FLOAT, default=0.5, low=0.01, high=60.0, unit="seconds"),
            "lease_s": Key(Kind.FLOAT, default=120.0, low=1.0, high=3600.0, unit="seconds"),
            "max_attempts": Key(Kind.INT, default=5, low=1, high=100),
            "backoff_s": Key(Kind.FLOAT, default=5.0, low=0.0, high=3600.0, unit="seconds"),
            "backoff_max_s": Key(Kind.FLOAT, default=600.0, low=0.0, high=86_400.0, unit="seconds"),
            "coa_timeout_s": Key(Kind.FLOAT, default=1.0, low=0.05, high=30.0, unit="seconds"),
            "coa_retries": Key(Kind.INT, default=2, low=0, high=10),
            "coa_source": Key(
                Kind.STR,
                default="127.0.0.1",
                convert=_ip_text,
                expected="an IP address (CoA requests are sent from it; NASes know it as our address)",
            ),
            "switch_timeout_s": Key(Kind.FLOAT, default=20.0, low=1.0, high=300.0, unit="seconds"),
            "reconcile_interval_s": Key(
                Kind.FLOAT, default=0.0, low=0.0, high=86_400.0, unit="seconds, 0 = only on demand"
            ),
            "reconcile_repair": Key(Kind.BOOL, default=False),
            "export_interval_s": Key(Kind.FLOAT, default=2.0, low=0.1, high=3600.0, unit="seconds"),
            "credentials": Key(Kind.TABLES, item=_CREDENTIALS),
            "nms": Key(Kind.TABLES, item=_NMS),
        },
        build=_provisioning,
        check=_check_provisioning,
    ),
)


# --------------------------------------------------------------------------- the loader


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$BILLING_CONFIG`` if set, else the system file if it exists, else ``conf/billing.toml``.

    The last is relative to the current directory, so a checkout works without installing.
    """
    env = os.environ if env is None else env
    if env.get("BILLING_CONFIG"):
        return Path(env["BILLING_CONFIG"])
    if SYSTEM_CONFIG_PATH.exists():
        return SYSTEM_CONFIG_PATH
    return Path("conf") / "billing.toml"


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the config at ``path``; raise :class:`ConfigError` if bad.

    ``env`` supplies the variables that ``{ env = "VAR" }`` secrets read (default:
    ``os.environ``), so tests and tools need not touch the process environment.
    """
    source = Path(path)
    loader = _Loader(source, os.environ if env is None else env)
    config = loader.load()
    if loader.problems or config is None:
        raise ConfigError(loader.problems)
    return config


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


class _Loader:
    """Walks :data:`SCHEMA` over one parsed file, collecting problems instead of stopping."""

    def __init__(self, source: Path, env: Mapping[str, str]) -> None:
        self.source = source
        self.file = str(source)
        self.env = env
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, key, message))

    def load(self) -> Config | None:
        data = self.parse()
        if data is None:
            return None
        known = {s.name: s for s in SCHEMA}
        for name in data:
            if name not in known:
                self.problem(name, _unknown("table", name, known, "known tables"))
        built = {s.name: self.section(s, data.get(s.name)) for s in SCHEMA}
        if self.problems:
            return None
        return Config(source=self.source, **built)

    def parse(self) -> dict[str, Any] | None:
        """Read and parse the file; a bad file is one problem, with the line when known."""
        try:
            text = self.source.read_bytes().decode("utf-8")
        except OSError as exc:
            self.problem("", f"cannot read config file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError as exc:
            self.problem("", f"invalid TOML: not UTF-8 (byte {exc.start})")
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_POSITION.match(str(exc))
            if match:
                where = f"line {match['line']}, column {match['column']}"
                self.problem("", f"invalid TOML at {where}: {match['what']}")
            else:
                self.problem("", f"invalid TOML: {exc}")
            return None

    def section(self, spec: Section, raw: object, where: str | None = None) -> Any:
        """Validate one table and build its dataclass (``None`` if anything was wrong).

        ``where`` names the table in messages when it is not top-level (``aaa.nas[2]``).
        """
        where = where or spec.name
        if raw is None:
            if spec.required:
                required = ", ".join(k for k, key in spec.keys.items() if key.required)
                self.problem(where, f"missing table [{where}] (required keys: {required})")
                return None
            raw = {}
        if not isinstance(raw, dict):
            self.problem(where, f"expected a table [{where}], got {_show(raw)}")
            return None
        before = len(self.problems)
        for name in raw:
            if name not in spec.keys:
                message = _unknown("key", name, spec.keys, f"known keys of [{where}]")
                self.problem(f"{where}.{name}", message)
        values: dict[str, Any] = {}
        for name, key in spec.keys.items():
            dotted = f"{where}.{name}"
            values[name] = self.value(dotted, key, raw[name]) if name in raw else self.absent(dotted, key)
        if len(self.problems) > before:
            return None
        if spec.check is not None:
            for name, message in spec.check(values):
                self.problem(f"{where}.{name}", message)
            if len(self.problems) > before:
                return None
        return spec.build(**values)

    def absent(self, dotted: str, key: Key) -> Any:
        if key.required:
            self.problem(dotted, f"required key missing; expected {key.describe()}")
        return key.default

    def value(self, dotted: str, key: Key, raw: object) -> Any:
        """Type-check, range-check and convert one present value; ``None`` on a problem."""
        if key.kind is Kind.SECRET:
            return self.secret(dotted, key, raw)
        if key.kind is Kind.TABLES:
            return self.tables(dotted, key, raw)
        value = self.typed(key, raw)
        if value is _INVALID:
            self.problem(dotted, f"expected {key.describe()}, got {_show(raw)}")
            return None
        return self.converted(dotted, key, value, shown=_show(raw))

    def converted(self, dotted: str, key: Key, value: Any, shown: str) -> Any:
        if key.convert is None:
            return value
        try:
            return key.convert(value)
        except _Rejected as exc:
            reason = f" ({exc})" if str(exc) else ""
            self.problem(dotted, f"expected {key.describe()}, got {shown}{reason}")
            return None

    def tables(self, dotted: str, key: Key, raw: object) -> tuple[Any, ...] | None:
        """An array of tables, each validated against ``key.item``; ``None`` on a problem."""
        assert key.item is not None
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.problem(dotted, f"expected {key.describe()} ([[{dotted}]] blocks), got {_show(raw)}")
            return None
        built = [self.section(key.item, item, f"{dotted}[{index}]") for index, item in enumerate(raw)]
        return None if any(b is None for b in built) else tuple(built)

    @staticmethod
    def typed(key: Key, raw: object) -> Any:
        """The value if it has the key's type and range, else :data:`_INVALID`."""
        if key.kind is Kind.LIST:
            if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
                return _INVALID
            if key.choices and not all(v in key.choices for v in raw):
                return _INVALID
            return tuple(raw)
        if key.kind is Kind.BOOL:
            return raw if isinstance(raw, bool) else _INVALID
        if key.kind in (Kind.STR, Kind.CHOICE):
            if not isinstance(raw, str) or not raw.strip():
                return _INVALID
            return raw if key.kind is Kind.STR or raw in key.choices else _INVALID
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return _INVALID
        if key.kind is Kind.INT and not isinstance(raw, int):
            return _INVALID
        number: int | float = raw if key.kind is Kind.INT else float(raw)
        if math.isnan(number) or (key.low is not None and number < key.low):
            return _INVALID
        if key.high is not None and number > key.high:
            return _INVALID
        return number

    def secret(self, dotted: str, key: Key, raw: object) -> Secret | None:
        """Resolve an inline, ``{ env = ... }`` or ``{ file = ... }`` secret; never echo it."""
        if isinstance(raw, str):
            value, origin = raw, "written inline"
        elif isinstance(raw, dict) and len(raw) == 1 and isinstance(next(iter(raw.values())), str):
            [(kind, ref)] = raw.items()
            if kind == "env":
                if ref not in self.env:
                    self.problem(dotted, f"environment variable {ref} is not set")
                    return None
                value, origin = self.env[ref], f"from environment variable {ref}"
            elif kind == "file":
                path = Path(ref).expanduser()
                path = path if path.is_absolute() else self.source.parent / path
                try:
                    value = path.read_text(encoding="utf-8").rstrip("\r\n")
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
                    self.problem(dotted, f"cannot read secret file {path}: {reason}")
                    return None
                origin = f"from file {path}"
            else:
                self.problem(dotted, f"expected {key.describe()}, got a table with key {json.dumps(kind)}")
                return None
        else:
            self.problem(dotted, f"expected {key.describe()}, got {_show(raw, secret=True)}")
            return None
        if not value.strip():
            self.problem(dotted, f"expected {key.describe()}, got an empty value {origin}")
            return None
        converted = self.converted(dotted, key, value, shown=f"a value {origin} (not shown: secret)")
        return None if converted is None else Secret(converted)


_INVALID = object()


def _unknown(what: str, name: str, known: Mapping[str, Any], label: str) -> str:
    """'unknown key', a close-match hint for typos, and the list of known names."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown {what}{hint}; {label}: {', '.join(known)}"


def _show(value: object, secret: bool = False) -> str:
    """Render a TOML value for an error message the way the operator wrote it."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if secret:
        return f"a {_toml_type(value)} (not shown: secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return repr(value)


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime | date | time):
        return "date/time"
    return "string"
