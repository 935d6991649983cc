"""SNMP face of the simulated switch: a pysnmp 7 agent (asyncio) with a writable IF-MIB subset.

Objects, per port ``n`` (instance index = ifIndex):

==================  ===========================  ==========  ==================================
ifIndex             1.3.6.1.2.1.2.2.1.1.n        read-only   INTEGER
ifDescr             1.3.6.1.2.1.2.2.1.2.n        read-only   OCTET STRING ("GigabitEthernet0/n")
ifAdminStatus       1.3.6.1.2.1.2.2.1.7.n        read-write  INTEGER up(1) / down(2)
ifOperStatus        1.3.6.1.2.1.2.2.1.8.n        read-only   INTEGER, follows ifAdminStatus
ifName              1.3.6.1.2.1.31.1.1.1.1.n     read-only   OCTET STRING
ifAlias             1.3.6.1.2.1.31.1.1.1.18.n    read-write  OCTET STRING (≤ 64 octets)
==================  ===========================  ==========  ==================================

Rather than pysnmp's MIB tree (no compiled IF-MIB ships with it), a small instrumentation
controller reads and writes :class:`~simulators.switch_state.SwitchState` directly; access
is still checked per variable through VACM (the responder's ``acFun``).  Communities (v1 and
v2c): ``public`` read-only, ``private`` read-write; optionally one SNMPv3 USM user (authPriv,
HMAC-SHA-96 and AES-128 passphrases), read-write.  The read-only community gets a write view
that matches nothing: pysnmp 7.1.30 lets a community with *no* write view SET.
"""

from __future__ import annotations

import asyncio
import bisect
import socket
from collections.abc import Callable
from typing import Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error
from pysnmp.smi.instrum import AbstractMibInstrumController

from simulators.switch_state import AdminStatus, SwitchState, UnknownPort

__all__ = ["IF_ADMIN_STATUS", "IF_ALIAS", "IF_DESCR", "IF_OPER_STATUS", "SwitchSnmpAgent"]

Oid = tuple[int, ...]

IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_X_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_INDEX: Oid = (*IF_ENTRY, 1)
IF_DESCR: Oid = (*IF_ENTRY, 2)
IF_ADMIN_STATUS: Oid = (*IF_ENTRY, 7)
IF_OPER_STATUS: Oid = (*IF_ENTRY, 8)
IF_NAME: Oid = (*IF_X_ENTRY, 1)
IF_ALIAS: Oid = (*IF_X_ENTRY, 18)
_MIB_2: Oid = (1, 3, 6, 1, 2, 1)
_NOTHING: Oid = (0, 0)  # a view subtree none of our objects is under: the "empty" write view
_ALIAS_MAX = 64

# column -> how to read it from a port
_READERS: dict[Oid, Callable[[Any], Any]] = {
    IF_INDEX: lambda port: rfc1902.Integer32(port.if_index),
    IF_DESCR: lambda port: rfc1902.OctetString(port.name),
    IF_ADMIN_STATUS: lambda port: rfc1902.Integer32(int(port.admin)),
    IF_OPER_STATUS: lambda port: rfc1902.Integer32(int(port.oper)),
    IF_NAME: lambda port: rfc1902.OctetString(port.name),
    IF_ALIAS: lambda port: rfc1902.OctetString(port.alias),
}


class _IfMibController(AbstractMibInstrumController):
    """Reads and writes the IF-MIB subset straight from the shared state, checking VACM per variable."""

    def __init__(self, state: SwitchState) -> None:
        self._state = state

    def _instances(self) -> list[Oid]:
        indexes = [port.if_index for port in self._state.ports()]
        return sorted((*column, n) for column in _READERS for n in indexes)

    def _value(self, oid: Oid) -> Any:
        column, index = oid[:-1], oid[-1]
        if column not in _READERS or len(oid) != len(column) + 1:
            return None
        try:
            return _READERS[column](self._state.port(index))
        except UnknownPort:
            return None

    @staticmethod
    def _denied(view: str, name: Any, value: Any, idx: int, ctx: dict[str, Any]) -> bool:
        # acFun raises AuthorizationError when there is no access entry; True = not in the view
        return bool(ctx["acFun"](view, (name, value), **{**ctx, "idx": idx}))

    def read_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        """GET: each name's value, or noSuchObject / noSuchInstance."""
        answer = []
        for idx, (name, _) in enumerate(var_binds):
            oid = tuple(name)
            value = None if self._denied("read", name, None, idx, ctx) else self._value(oid)
            if value is None:
                known_column = oid[:-1] in _READERS
                value = rfc1905.noSuchInstance if known_column else rfc1905.noSuchObject
            answer.append((name, value))
        return answer

    def read_next_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        """GETNEXT (and GETBULK): the next readable instance after each name, or endOfMibView."""
        instances = self._instances()
        answer = []
        for idx, (name, _) in enumerate(var_binds):
            position = bisect.bisect_right(instances, tuple(name))
            for oid in instances[position:]:
                next_name = rfc1902.ObjectName(oid)
                if not self._denied("read", next_name, None, idx, ctx):
                    answer.append((next_name, self._value(oid)))
                    break
            else:
                answer.append((name, rfc1905.endOfMibView))
        return answer

    def write_variables(self, *var_binds: Any, **ctx: Any) -> list[tuple[Any, Any]]:
        """SET: all variables are checked first, then all are applied (or none)."""
        changes: list[Callable[[], object]] = []
        for idx, (name, value) in enumerate(var_binds):
            oid = tuple(name)
            if self._denied("write", name, value, idx, ctx):
                raise smi_error.NoAccessError(name=name, idx=idx)
            if self._value(oid) is None:
                raise smi_error.NoCreationError(name=name, idx=idx)
            changes.append(self._change(oid, value, idx))
        for change in changes:
            change()
        return [(name, value) for name, value in var_binds]

    def _change(self, oid: Oid, value: Any, idx: int) -> Callable[[], object]:
        column, index = oid[:-1], oid[-1]
        if column == IF_ADMIN_STATUS:
            if value.tagSet != univ.Integer.tagSet:
                raise smi_error.WrongTypeError(name=oid, idx=idx)
            if int(value) not in (AdminStatus.UP, AdminStatus.DOWN):
                raise smi_error.WrongValueError(name=oid, idx=idx)
            return lambda: self._state.set_admin(index, AdminStatus(int(value)))
        if column == IF_ALIAS:
            if value.tagSet != univ.OctetString.tagSet:
                raise smi_error.WrongTypeError(name=oid, idx=idx)
            if len(value) > _ALIAS_MAX:
                raise smi_error.WrongLengthError(name=oid, idx=idx)
            text = bytes(value).decode("utf-8", "replace")
            return lambda: self._state.set_alias(index, text)
        raise smi_error.NotWritableError(name=oid, idx=idx)


class SwitchSnmpAgent:
    """An SNMP agent on ``host:port`` (0 = any free port) serving ``state``; ``port`` is the bound one.

    ``v3_user`` is (user name, auth passphrase, priv passphrase) of a read-write authPriv user.
    Create it with the asyncio event loop that will run it current (or pass ``loop``); it
    answers while that loop runs; :meth:`close` releases the socket.
    """

    def __init__(
        self,
        state: SwitchState,
        host: str = "127.0.0.1",
        port: int = 0,
        read_community: str = "public",
        write_community: str = "private",
        loop: asyncio.AbstractEventLoop | None = None,
        v3_user: tuple[str, str, str] | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        sock.setblocking(False)
        self.host, self.port = sock.getsockname()[:2]
        self.engine = engine = SnmpEngine()
        transport = udp.UdpTransport(loop=loop or asyncio.get_event_loop())
        config.add_transport(engine, udp.DOMAIN_NAME, transport.open_server_mode(sock=sock))
        config.add_v1_system(engine, "ro-area", read_community)
        config.add_v1_system(engine, "rw-area", write_community)
        for model in (1, 2):  # SNMPv1 and SNMPv2c
            config.add_vacm_user(engine, model, "ro-area", "noAuthNoPriv", _MIB_2, _NOTHING)
            config.add_vacm_user(engine, model, "rw-area", "noAuthNoPriv", _MIB_2, _MIB_2)
        if v3_user is not None:  # (user name, auth passphrase, priv passphrase)
            user, auth_key, priv_key = v3_user
            sha, aes = config.USM_AUTH_HMAC96_SHA, config.USM_PRIV_CFB128_AES
            config.add_v3_user(engine, user, sha, auth_key, aes, priv_key)
            config.add_vacm_user(engine, 3, user, "authPriv", _MIB_2, _MIB_2)
        snmp_context = context.SnmpContext(engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _IfMibController(state))
        for responder in (
            cmdrsp.GetCommandResponder,
            cmdrsp.NextCommandResponder,
            cmdrsp.BulkCommandResponder,
            cmdrsp.SetCommandResponder,
        ):
            responder(engine, snmp_context)

    def close(self) -> None:
        """Stop answering and close the socket."""
        self.engine.close_dispatcher()
