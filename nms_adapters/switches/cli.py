"""CLI switch drivers: netmiko sessions driven from a thread pool, vendor wording from a dialect module.

netmiko is blocking, so every session operation runs in an executor thread
(``loop.run_in_executor``), never on the reactor's event loop.  What to type and how to read the
answers is the dialect's business (:mod:`~nms_adapters.switches.cisco_ios`,
:mod:`~nms_adapters.switches.huawei`: pure functions); this module owns the session.

Connections: one SSH session per driver (= per switch), opened on first use and kept for the
next operations, which run one at a time.  A login costs 0.2–0.6 s on loopback and seconds on
real switches, and a mass-suspension day sends many changes to the same switch, so re-logging
in per operation would dominate; one session per switch also respects the few VTY lines an
access switch has.  The session is checked before each use (the SSH transport still active) and
reopened if the switch dropped it; a transport error or timeout during an operation discards it
(the change's outcome is then unknown: :class:`~nms_adapters.switches.errors.SwitchUnreachable`).
:meth:`CliDriver.close` logs out.

Configuration mode: entered and left by the dialect's commands, each read up to the prompt it
leads to.  Not netmiko's ``config_mode()``/``exit_config_mode()``: for ``huawei`` they check the
mode by waiting for two seconds of silence, twice each, which made one change take ~9 s.  The
session is in exec mode between operations (every operation leaves it so, or is dropped).

Configuration errors: the commands go one at a time; the first one the switch answers with an
error line stops the rest, the session is taken out of configuration mode (netmiko would leave
it there) and :class:`~nms_adapters.switches.errors.SwitchRefused` names the command and the
switch's line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar

from nms_adapters.switches.config_text import InterfaceConfig
from nms_adapters.switches.errors import SwitchAuthFailed, SwitchError, SwitchRefused, SwitchUnreachable
from nms_adapters.switches.model import PortState, SwitchAccess

__all__ = ["CliDialect", "CliDriver"]

T = TypeVar("T")


class CliDialect(Protocol):
    """One vendor family's commands and parsers (a module such as :mod:`.cisco_ios` satisfies it)."""

    NETMIKO_DEVICE_TYPE: str
    SHOW_CONFIG: str  # the whole configuration (every interface section)
    SHOW_STATUS: str  # link state of every port
    CONFIG_ENTER: str  # from the exec (user) view into configuration mode
    CONFIG_EXIT: str  # from any configuration level back to exec mode

    def config_prompt(self, hostname: str) -> str: ...
    def exec_prompt(self, hostname: str) -> str: ...
    def interface_name(self, port: str) -> str: ...
    def block_commands(self, interface: str) -> list[str]: ...
    def unblock_commands(self, interface: str) -> list[str]: ...
    def rate_commands(self, interface: str, current: InterfaceConfig, kbps: int | None) -> list[str]: ...
    def show_interface_config(self, interface: str) -> str: ...
    def parse_configs(self, text: str) -> dict[str, InterfaceConfig]: ...
    def parse_status(self, text: str) -> dict[str, bool | None]: ...
    def error_line(self, output: str) -> str | None: ...


class CliDriver:
    """A :class:`~nms_adapters.switches.model.SwitchDriver` over SSH for one switch.

    ``executor``: the thread pool for netmiko (None: the event loop's default executor).
    ``conn_timeout_s``: TCP connect and login; ``read_timeout_s``: the longest wait for one
    command's answer.  ``connections_opened`` counts logins (a metric, and how tests see reuse).
    """

    def __init__(
        self,
        access: SwitchAccess,
        dialect: CliDialect,
        *,
        executor: Executor | None = None,
        conn_timeout_s: float = 10.0,
        read_timeout_s: float = 20.0,
    ) -> None:
        if not access.username or access.password is None:
            raise SwitchError(f"switch {access.name}: {access.device_type} needs a username and password")
        self.access, self.dialect = access, dialect
        self.connections_opened = 0
        self._executor = executor
        self._conn_timeout_s, self._read_timeout_s = conn_timeout_s, read_timeout_s
        self._connection: Any = None  # netmiko BaseConnection, imported lazily (heavy)
        self._queue = asyncio.Lock()  # operations wait here, not in pool threads
        self._session_lock = threading.Lock()  # a cancelled await leaves its thread running
        self._closed = False

    def __repr__(self) -> str:
        return f"CliDriver({self.access.name!r}, {self.dialect.NETMIKO_DEVICE_TYPE})"

    # ------------------------------------------------------------------ SwitchDriver

    async def block(self, port: str) -> None:
        """Shut the port down."""
        interface = self._interface(port)
        await self._call(self._configure, self.dialect.block_commands(interface))

    async def unblock(self, port: str) -> None:
        """Enable the port."""
        interface = self._interface(port)
        await self._call(self._configure, self.dialect.unblock_commands(interface))

    async def set_rate(self, port: str, kbps: int | None) -> None:
        """Limit both directions to ``kbps`` (None: remove); reads the port, changes only what differs."""
        interface = self._interface(port)
        await self._call(self._set_rate, interface, kbps)

    async def read_port(self, port: str) -> PortState:
        """The port's configuration and link state (two show commands)."""
        interface = self._interface(port)
        config, oper = await self._call(self._read_one, interface)
        return PortState(port, config.admin_up, oper, config.alias, config.rate_kbps)

    async def read_ports(self) -> list[PortState]:
        """Every interface in the configuration, with its link state."""
        configs, oper = await self._call(self._read_all)
        return [
            PortState(c.name, c.admin_up, oper.get(c.name), c.alias, c.rate_kbps) for c in configs.values()
        ]

    async def close(self) -> None:
        """Log out; later operations fail."""
        if self._closed:
            return
        self._closed = True
        async with self._queue:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)

    # ------------------------------------------------------------------ on the loop

    def _interface(self, port: str) -> str:
        try:
            return self.dialect.interface_name(port)
        except ValueError as exc:
            raise SwitchError(f"switch {self.access.name}: {exc}") from None

    async def _call(self, operation: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise SwitchError(f"switch {self.access.name}: driver closed")
        loop = asyncio.get_running_loop()
        async with self._queue:
            return await loop.run_in_executor(self._executor, functools.partial(self._run, operation, *args))

    # ------------------------------------------------------------------ in a pool thread

    def _run(self, operation: Callable[..., T], *args: Any) -> T:
        from netmiko.exceptions import NetmikoBaseException
        from paramiko.ssh_exception import SSHException

        with self._session_lock:
            connection = self._session()
            try:
                return operation(connection, *args)
            except (NetmikoBaseException, SSHException, OSError, EOFError) as exc:
                self._drop()
                raise SwitchUnreachable(
                    f"switch {self.access.name}: session failed ({type(exc).__name__}: {exc}); "
                    "the outcome of a change is unknown"
                ) from exc

    def _session(self) -> Any:
        connection = self._connection
        if connection is not None and not _transport_active(connection):
            self._drop()
            connection = None
        if connection is None:
            connection = self._connection = self._connect()
        return connection

    def _connect(self) -> Any:
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException

        access = self.access
        where = f"switch {access.name} ({access.address}:{access.ssh_port})"
        try:
            connection = ConnectHandler(
                device_type=self.dialect.NETMIKO_DEVICE_TYPE,
                host=access.address,
                port=access.ssh_port,
                username=access.username,
                password=access.password,
                secret=access.enable_secret or "",
                conn_timeout=self._conn_timeout_s,
                auth_timeout=self._conn_timeout_s,
                banner_timeout=self._conn_timeout_s,
                read_timeout_override=self._read_timeout_s,
                allow_agent=False,
                use_keys=False,
                fast_cli=True,
            )
        except NetmikoAuthenticationException as exc:
            raise SwitchAuthFailed(f"{where}: login refused for {access.username!r}") from exc
        except Exception as exc:  # netmiko/paramiko/socket: all mean "no session"
            raise SwitchUnreachable(f"{where}: cannot log in ({type(exc).__name__}: {exc})") from exc
        self.connections_opened += 1
        try:
            connection.enable()  # Cisco: privileged mode with the enable secret; no-op where there is none
        except Exception as exc:
            _quietly_disconnect(connection)
            raise SwitchAuthFailed(f"{where}: enable refused ({type(exc).__name__}: {exc})") from exc
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _quietly_disconnect(connection)

    def _disconnect(self) -> None:
        with self._session_lock:
            self._drop()

    def _send(self, connection: Any, command: str) -> str:
        """A show command; a switch error line raises :class:`SwitchRefused`."""
        output = str(connection.send_command(command, read_timeout=self._read_timeout_s))
        error = self.dialect.error_line(output)
        if error:
            raise SwitchRefused(f"switch {self.access.name}: {command!r} refused: {error}")
        return output

    def _configure(self, connection: Any, commands: list[str]) -> None:
        if not commands:
            return
        hostname = str(connection.base_prompt)
        self._mode(connection, self.dialect.CONFIG_ENTER, self.dialect.config_prompt(hostname))
        for command in commands:
            output = str(
                connection.send_config_set(
                    [command],
                    enter_config_mode=False,
                    exit_config_mode=False,
                    read_timeout=self._read_timeout_s,
                )
            )
            error = self.dialect.error_line(output)
            if error:
                # netmiko would leave the session in configuration mode: the next operation must not
                # start there
                self._mode(connection, self.dialect.CONFIG_EXIT, self.dialect.exec_prompt(hostname))
                raise SwitchRefused(f"switch {self.access.name}: {command!r} refused: {error}")
        self._mode(connection, self.dialect.CONFIG_EXIT, self.dialect.exec_prompt(hostname))

    def _mode(self, connection: Any, command: str, prompt: str) -> None:
        """Enter or leave configuration mode: ``command``, then read up to ``prompt``."""
        output = str(
            connection.send_command(
                command, expect_string=prompt, read_timeout=self._read_timeout_s, strip_prompt=False
            )
        )
        error = self.dialect.error_line(output)
        if error:
            raise SwitchRefused(f"switch {self.access.name}: {command!r} refused: {error}")

    def _interface_config(self, connection: Any, interface: str) -> InterfaceConfig:
        text = self._send(connection, self.dialect.show_interface_config(interface))
        config = self.dialect.parse_configs(text).get(interface)
        if config is None:
            raise SwitchRefused(f"switch {self.access.name}: no interface {interface} in its configuration")
        return config

    def _set_rate(self, connection: Any, interface: str, kbps: int | None) -> None:
        current = self._interface_config(connection, interface)
        try:
            commands = self.dialect.rate_commands(interface, current, kbps)
        except ValueError as exc:
            raise SwitchRefused(f"switch {self.access.name}: {exc}") from None
        self._configure(connection, commands)

    def _read_one(self, connection: Any, interface: str) -> tuple[InterfaceConfig, bool | None]:
        config = self._interface_config(connection, interface)
        oper = self.dialect.parse_status(self._send(connection, self.dialect.SHOW_STATUS)).get(interface)
        return config, oper

    def _read_all(self, connection: Any) -> tuple[dict[str, InterfaceConfig], dict[str, bool | None]]:
        configs = self.dialect.parse_configs(self._send(connection, self.dialect.SHOW_CONFIG))
        oper = self.dialect.parse_status(self._send(connection, self.dialect.SHOW_STATUS))
        return configs, oper


def _transport_active(connection: Any) -> bool:
    """Whether the SSH transport is still up (without netmiko's is_alive, which types a NUL)."""
    channel = getattr(connection, "remote_conn", None)
    transport = getattr(channel, "transport", None)
    return bool(transport is not None and transport.is_active() and not channel.closed)


def _quietly_disconnect(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing left to release
        connection.disconnect()
