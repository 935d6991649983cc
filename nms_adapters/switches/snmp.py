"""The SNMP switch driver (device type ``snmp``): IF-MIB over pysnmp 7's asyncio API.

Block and unblock SET ``ifAdminStatus`` (down(2) / up(1)); reads GET ``ifAdminStatus``,
``ifOperStatus`` and ``ifAlias``.  Port names become ifIndexes by walking ``ifName`` and
``ifDescr`` once per driver (a name that stops answering is looked up again); a port given as
digits is taken as the ifIndex itself.  IF-MIB has no rate limit, and no standard MIB sets one
across vendors, so :meth:`SnmpDriver.set_rate` raises
:class:`~nms_adapters.switches.errors.NotSupported`: use a CLI device type for rate limits.

Credentials come from :class:`~nms_adapters.switches.model.SwitchAccess`: v2c reads with the
read community and writes with the write community; v3 uses one USM user for both.  pysnmp runs
on the running asyncio loop (the reactor's, in billingd): nothing here blocks.  One SNMP engine
per driver, made on first use and released by :meth:`SnmpDriver.close`.
"""

from __future__ import annotations

from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    Integer,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
    set_cmd,
)
from pysnmp.proto import errind

from nms_adapters.switches.errors import (
    NotSupported,
    SwitchAuthFailed,
    SwitchError,
    SwitchRefused,
    SwitchUnreachable,
)
from nms_adapters.switches.model import PortState, SwitchAccess
from nms_adapters.switches.port_names import canonical_port_name

__all__ = ["SnmpDriver"]

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"
UP, DOWN = 1, 2
_COLUMN_NAMES = {
    IF_DESCR: "ifDescr",
    IF_ADMIN_STATUS: "ifAdminStatus",
    IF_OPER_STATUS: "ifOperStatus",
    IF_NAME: "ifName",
    IF_ALIAS: "ifAlias",
}
_OPER_UP = {1: True, 2: False, 6: False, 7: False}  # up, down, notPresent, lowerLayerDown; others unknown
_AUTH_PROTOCOLS = {
    "md5": USM_AUTH_HMAC96_MD5,
    "sha": USM_AUTH_HMAC96_SHA,
    "sha224": USM_AUTH_HMAC128_SHA224,
    "sha256": USM_AUTH_HMAC192_SHA256,
    "sha384": USM_AUTH_HMAC256_SHA384,
    "sha512": USM_AUTH_HMAC384_SHA512,
}
_PRIV_PROTOCOLS = {
    "des": USM_PRIV_CBC56_DES,
    "3des": USM_PRIV_CBC168_3DES,
    "aes": USM_PRIV_CFB128_AES,
    "aes128": USM_PRIV_CFB128_AES,
    "aes192": USM_PRIV_CFB192_AES,
    "aes256": USM_PRIV_CFB256_AES,
}
_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnknownSecurityName,
)


class SnmpDriver:
    """A :class:`~nms_adapters.switches.model.SwitchDriver` over SNMP for one switch.

    ``timeout_s`` and ``retries``: per request (a v2c request with a wrong community is not
    answered at all, so it ends as :class:`SwitchUnreachable` after them).
    """

    def __init__(self, access: SwitchAccess, *, timeout_s: float = 2.0, retries: int = 2) -> None:
        self.access = access
        self._timeout_s, self._retries = timeout_s, retries
        self._read_auth, self._write_auth = _credentials(access)
        self._engine: SnmpEngine | None = None
        self._target: UdpTransportTarget | None = None
        self._indexes: dict[str, int] = {}  # canonical port name -> ifIndex
        self._where = f"switch {access.name} ({access.address}:{access.snmp_port})"

    def __repr__(self) -> str:
        return f"SnmpDriver({self.access.name!r}, {self.access.snmp_version})"

    # ------------------------------------------------------------------ SwitchDriver

    async def block(self, port: str) -> None:
        """SET ifAdminStatus down(2)."""
        await self._set_admin(port, DOWN)

    async def unblock(self, port: str) -> None:
        """SET ifAdminStatus up(1)."""
        await self._set_admin(port, UP)

    async def set_rate(self, port: str, kbps: int | None) -> None:
        """Always :class:`NotSupported`: IF-MIB has no rate limit."""
        raise NotSupported(
            f"{self._where}: IF-MIB has no port rate limit; use a CLI device type (cisco_ios, huawei) for it"
        )

    async def read_port(self, port: str) -> PortState:
        """GET ifAdminStatus, ifOperStatus and ifAlias of the port (``rate_kbps`` is None: unknown)."""
        index = await self._index(port)
        oids = [f"{IF_ADMIN_STATUS}.{index}", f"{IF_OPER_STATUS}.{index}", f"{IF_ALIAS}.{index}"]
        values = await self._get(oids)
        if any(_missing(value) for value in values):
            self._forget(port)
            index = await self._index(port)
            values = await self._get([oid.rsplit(".", 1)[0] + f".{index}" for oid in oids])
            if any(_missing(value) for value in values):
                raise SwitchRefused(f"{self._where}: port {port!r} (ifIndex {index}) does not answer")
        admin, oper, alias = values
        return PortState(port, int(admin) == UP, _OPER_UP.get(int(oper)), _text(alias), None)

    async def read_ports(self) -> list[PortState]:
        """Walk ifName (or ifDescr), ifAdminStatus, ifOperStatus and ifAlias: every interface."""
        names = await self._walk(IF_NAME)
        descriptions = await self._walk(IF_DESCR)
        admin = await self._walk(IF_ADMIN_STATUS)
        oper = await self._walk(IF_OPER_STATUS)
        aliases = await self._walk(IF_ALIAS)
        states = []
        for index in sorted(admin):
            name = _text(names.get(index, "")) or _text(descriptions.get(index, "")) or str(index)
            oper_up = _OPER_UP.get(int(oper[index])) if index in oper else None
            alias = _text(aliases.get(index, ""))
            states.append(PortState(name, int(admin[index]) == UP, oper_up, alias, None))
        return states

    async def close(self) -> None:
        """Release the SNMP engine's socket."""
        engine, self._engine, self._target = self._engine, None, None
        if engine is not None:
            engine.close_dispatcher()

    # ------------------------------------------------------------------ ports

    async def _index(self, port: str) -> int:
        if port.strip().isdigit():
            return int(port)
        key = canonical_port_name(port) or port.strip().lower()
        if key not in self._indexes:
            for column in (IF_NAME, IF_DESCR):
                for index, value in (await self._walk(column)).items():
                    name = _text(value)
                    self._indexes.setdefault(canonical_port_name(name) or name.lower(), index)
                if key in self._indexes:
                    break
        if key not in self._indexes:
            raise SwitchRefused(f"{self._where}: no port {port!r} in ifName / ifDescr")
        return self._indexes[key]

    def _forget(self, port: str) -> None:
        self._indexes.pop(canonical_port_name(port) or port.strip().lower(), None)

    async def _set_admin(self, port: str, status: int) -> None:
        if self._write_auth is None:
            raise SwitchError(f"{self._where}: no write community configured")
        index = await self._index(port)
        shown = "down(2)" if status == DOWN else "up(1)"
        await self._set(f"{IF_ADMIN_STATUS}.{index}", Integer(status), shown)

    # ------------------------------------------------------------------ SNMP

    async def _session(self) -> tuple[SnmpEngine, UdpTransportTarget]:
        if self._engine is None:
            self._engine = SnmpEngine()
        if self._target is None:
            try:
                address = (self.access.address, self.access.snmp_port)
                self._target = await UdpTransportTarget.create(
                    address, timeout=self._timeout_s, retries=self._retries
                )
            except Exception as exc:
                await self.close()
                raise SwitchUnreachable(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        return self._engine, self._target

    async def _get(self, oids: list[str]) -> list[Any]:
        engine, target = await self._session()
        var_binds = [ObjectType(ObjectIdentity(oid)) for oid in oids]
        result = await get_cmd(engine, self._read_auth, target, ContextData(), *var_binds, lookupMib=False)
        return [value for _, value in self._check("GET", oids, *result)]

    async def _set(self, oid: str, value: Any, shown: str) -> None:
        engine, target = await self._session()
        var_bind = ObjectType(ObjectIdentity(oid), value)
        result = await set_cmd(engine, self._write_auth, target, ContextData(), var_bind, lookupMib=False)
        self._check(f"SET {_label(oid)}={shown}", [oid], *result)

    async def _walk(self, column: str) -> dict[int, Any]:
        engine, target = await self._session()
        found: dict[int, Any] = {}
        async for result in bulk_walk_cmd(
            engine,
            self._read_auth,
            target,
            ContextData(),
            0,
            25,
            ObjectType(ObjectIdentity(column)),
            lexicographicMode=False,
            lookupMib=False,
        ):
            for name, value in self._check("walk", [column], *result):
                oid = tuple(name)
                if oid[:-1] == _oid(column) and not _missing(value):
                    found[int(oid[-1])] = value
        return found

    def _check(
        self, request: str, oids: list[str], indication: Any, status: Any, index: Any, var_binds: Any
    ) -> list[tuple[Any, Any]]:
        """The var binds of an answer, or the error it carries as a :class:`SwitchError`."""
        if indication:
            what = f"{request} {', '.join(map(_label, oids))}" if request != "SET" else request
            if isinstance(indication, _AUTH_ERRORS):
                raise SwitchAuthFailed(f"{self._where}: {what}: {indication}")
            hint = " (or the community is wrong: agents do not answer those)" if self._v2c else ""
            raise SwitchUnreachable(f"{self._where}: {what}: {indication}{hint}")
        if status and int(status):
            bad = oids[int(index) - 1] if index and 0 < int(index) <= len(oids) else ", ".join(oids)
            raise SwitchRefused(f"{self._where}: {request} refused: {status.prettyPrint()} at {_label(bad)}")
        return [(name, value) for name, value in var_binds]

    @property
    def _v2c(self) -> bool:
        return self.access.snmp_version == "v2c"


def _credentials(access: SwitchAccess) -> tuple[Any, Any]:
    """(read auth, write auth) for pysnmp from the access record; write is None for no write community."""
    if access.snmp_version == "v2c":
        if not access.read_community:
            raise SwitchError(f"switch {access.name}: snmp v2c needs a read community")
        write = CommunityData(access.write_community, mpModel=1) if access.write_community else None
        return CommunityData(access.read_community, mpModel=1), write
    if not access.v3_user:
        raise SwitchError(f"switch {access.name}: snmp v3 needs a user")
    try:
        auth = _AUTH_PROTOCOLS[access.v3_auth_protocol.lower()] if access.v3_auth_key else USM_AUTH_NONE
        priv = _PRIV_PROTOCOLS[access.v3_priv_protocol.lower()] if access.v3_priv_key else USM_PRIV_NONE
    except KeyError as exc:
        known = f"auth {', '.join(_AUTH_PROTOCOLS)}; priv {', '.join(_PRIV_PROTOCOLS)}"
        problem = f"unknown SNMPv3 protocol {exc.args[0]!r} ({known})"
        raise SwitchError(f"switch {access.name}: {problem}") from None
    user = UsmUserData(
        access.v3_user,
        authKey=access.v3_auth_key,
        privKey=access.v3_priv_key,
        authProtocol=auth,
        privProtocol=priv,
    )
    return user, user


def _label(oid: str) -> str:
    """``1.3.6.1.2.1.2.2.1.7.3`` → ``ifAdminStatus.3`` for messages."""
    for column, name in _COLUMN_NAMES.items():
        if oid == column or oid.startswith(column + "."):
            return name + oid[len(column) :]
    return oid


def _oid(dotted: str) -> tuple[int, ...]:
    return tuple(int(part) for part in dotted.split("."))


def _missing(value: Any) -> bool:
    """noSuchObject / noSuchInstance / endOfMibView in a GET answer."""
    return value is None or value.tagSet in _EXCEPTION_TAGS


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace") if hasattr(value, "asOctets") else str(value)


def _exception_tags() -> frozenset[Any]:
    from pysnmp.proto import rfc1905

    return frozenset(v.tagSet for v in (rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView))


_EXCEPTION_TAGS = _exception_tags()
