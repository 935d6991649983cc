"""What every command shares: the config and database, who runs it, and how failures exit.

:class:`AppState` is click's context object. :meth:`AppState.run` is the one way a command
touches the database as an operator: it resolves the OS login (and ``--as``) to an actor,
checks the permission, calls the service in one transaction, and maps failures to exit codes
in one place: domain errors exit 1 (:class:`CliFailure`), refusals exit 3 (:class:`AccessDenied`,
recorded in the audit log in a transaction of their own), click usage errors stay exit 2.
Heavy modules (SQLAlchemy, the models) are imported inside methods so ``--help`` stays fast.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from billing.audit import Actor
    from billing.config import Config

T = TypeVar("T")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3


class CliFailure(click.ClickException):
    """A refused request or bad input: the message names the field; exit 1."""

    exit_code = EXIT_ERROR


class AccessDenied(click.ClickException):
    """The operator may not do this (or is no operator): exit 3."""

    exit_code = EXIT_DENIED


def domain_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "refused, nothing written": shown as a message, exit 1."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from billing.accounts import AccountError
    from billing.config import ConfigError
    from billing.dictionaries import DictionaryError
    from billing.ledger import LedgerError
    from billing.lifecycle import LifecycleError
    from billing.operators import OperatorError
    from billing.payments import PaymentError
    from billing.provisioning_admin import ProvisioningAdminError
    from billing.service_lifecycle import ServiceLifecycleError
    from billing.subscribers import SubscriberError
    from rating.money import MoneyError

    return (
        AccountError,
        DictionaryError,
        OperatorError,
        PaymentError,
        ProvisioningAdminError,
        SubscriberError,
        LedgerError,
        LifecycleError,
        ServiceLifecycleError,
        MoneyError,
        ConfigError,
        IntegrityError,
        OperationalError,
    )


def describe(exc: Exception) -> str:
    """The operator-facing text of a domain error (database errors without the SQL)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    if isinstance(exc, IntegrityError):
        return f"refused by the database (conflicts with existing data): {exc.orig}"
    if isinstance(exc, OperationalError):
        return f"database error: {exc.orig}"
    return str(exc)


@dataclass
class AppState:
    """Global options and the lazily made config, engine and session factory of one invocation."""

    config_path: Path | None = None
    as_login: str | None = None
    source: str = "cli"
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def config(self) -> Config:
        """The validated config; a bad file fails with every problem listed (exit 1)."""
        if self._config is None:
            from billing.config import ConfigError, default_config_path, load_config

            path = self.config_path or default_config_path()
            try:
                self._config = load_config(path)
            except ConfigError as exc:
                raise CliFailure("bad configuration:\n" + "\n".join(str(p) for p in exc.problems)) from None
        return self._config

    def engine(self) -> Engine:
        if self._engine is None:
            from billing.db.engine import make_engine

            database = self.config().database
            self._engine = make_engine(
                database.sqlalchemy_url(),
                pool_size=1,
                pool_timeout_s=database.pool_timeout_s,
                statement_timeout_ms=database.statement_timeout_ms,
                echo=database.echo,
            )
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        from billing.db.engine import session_factory

        return session_factory(self.engine())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def os_login(self) -> str:
        return getpass.getuser()

    def run(self, permission: str, command: str, work: Callable[[Session, Actor], T]) -> T:
        """Run ``work`` as the calling operator holding ``permission``, in one transaction."""
        from billing.permissions import PermissionDenied, record_denial, require, resolve_actor

        factory = self.sessions()
        try:
            with factory() as session, session.begin():
                actor = resolve_actor(
                    session, self.os_login(), self.as_login, source=self.source, command=command
                )
                require(session, actor, permission, command)
                return work(session, actor)
        except PermissionDenied as denied:
            self.record_denial(denied, record_denial)
            raise AccessDenied(str(denied)) from None
        except domain_errors() as exc:
            raise CliFailure(describe(exc)) from None

    def run_without_operator(self, work: Callable[[Session, Actor], T]) -> T:
        """Run ``work`` in one transaction as the bare OS login (``db bootstrap`` only)."""
        from billing.audit import Actor
        from billing.permissions import PermissionDenied, record_denial

        factory = self.sessions()
        try:
            with factory() as session, session.begin():
                return work(session, Actor(None, self.os_login(), None, self.source))
        except PermissionDenied as denied:
            self.record_denial(denied, record_denial)
            raise AccessDenied(str(denied)) from None
        except domain_errors() as exc:
            raise CliFailure(describe(exc)) from None

    def record_denial(self, denied: Exception, record: Callable[[Session, Any], None]) -> None:
        """Keep the denial in the audit log, in its own transaction."""
        with self.sessions()() as session, session.begin():
            record(session, denied)

    def engine_call(self, work: Callable[[Engine], T]) -> T:
        """Run ``work`` on the engine with no operator (``db upgrade``/``current``)."""
        try:
            return work(self.engine())
        except domain_errors() as exc:
            raise CliFailure(describe(exc)) from None


def parse_date(text: str, option: str) -> date:
    """A calendar date ``YYYY-MM-DD``; a bad one fails naming ``option`` (exit 1)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliFailure(f"{option}: expected a date YYYY-MM-DD, got {text!r}") from None


def local_midnight(day: date, tz: Any) -> datetime:
    """The instant a day starts in the ISP's time zone, as an aware datetime."""
    return datetime.combine(day, time(0), tzinfo=tz)


def parse_instant(text: str, option: str, tz: Any) -> datetime:
    """A date or date-time (ISO 8601); without an offset it is read in the ISP's time zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CliFailure(
            f"{option}: expected a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM, got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)
