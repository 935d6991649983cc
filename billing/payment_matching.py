"""Which account a bank statement line pays: the account field, the contract field, the purpose text.

What: :class:`Matcher` holds the operator's purpose-text rules (``conf/payment_matching.toml``:
regular expressions whose one capture group is an account or a contract number, e.g. Russian
"л/с 100001", "лицевой счёт", "договор № ..."), validated at load: a bad file is refused naming
the file, the key and what was expected (:class:`billing.config.ConfigError`). :func:`directory_for`
fetches the accounts and contracts a batch of lines refers to (fields first; purpose texts only
of the lines the fields do not decide); :func:`decide` pairs each line with one open account,
or says why not.

Why this order and these rules: the account number field is what a bank fills in when its
form asks for it, the contract number comes next (the customer's contract names one customer,
whose single open account in the line's currency is meant), and the free purpose text last.
A match is only ever to an existing, open account kept in the line's currency; a purpose
text naming two different accounts is ambiguous and left to a person (the unmatched queue).
Policy is here in Python; operators tune only the patterns.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from billing.config import ConfigError, Problem
from billing.db.customers import Account, Customer

FIELDS = ("account", "contract")
"""What a rule's captured text is."""

_CHUNK = 1000
_MAX_NUMBER = 64


class MatchableLine(Protocol):
    """The parts of a statement line matching reads (``billing.payment_files.StatementLine``)."""

    @property
    def account(self) -> str | None: ...
    @property
    def contract(self) -> str | None: ...
    @property
    def purpose(self) -> str: ...
    @property
    def currency(self) -> str: ...


@dataclass(frozen=True)
class Rule:
    """One purpose-text rule: ``pattern``'s one capture group is a number of kind ``field``."""

    name: str
    field: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Matcher:
    """The purpose-text rules, in file order."""

    rules: tuple[Rule, ...] = ()

    def find(self, purpose: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(account numbers, contract numbers)`` the purpose text names, each once, in text order."""
        found: dict[str, dict[str, None]] = {"account": {}, "contract": {}}
        if purpose:
            for rule in self.rules:
                for match in rule.pattern.finditer(purpose):
                    number = _clean(match.group(1))
                    if number:
                        found[rule.field][number] = None
        return tuple(found["account"]), tuple(found["contract"])


@dataclass(frozen=True)
class Candidate:
    """An account a line may pay, as the lookup found it."""

    account_id: int
    number: str
    ledger_account_id: int
    currency: str
    status: str


@dataclass(frozen=True)
class Match:
    """The outcome for one line: ``account`` when paired, else ``None`` and the reason in ``detail``."""

    account: Candidate | None
    detail: str


@dataclass
class Directory:
    """Accounts by number, and the accounts of each contract, for one batch of lines."""

    accounts: dict[str, Candidate]
    contracts: dict[str, list[Candidate]]


def load_rules(path: Path) -> Matcher:
    """Read and validate the rules file; every problem is reported at once (``ConfigError``)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, "", f"cannot read the matching rules: {exc}")]) from None
    return parse_rules(text, name)


def parse_rules(text: str, name: str = "payment_matching.toml") -> Matcher:
    """Rules from TOML text: ``[[rule]]`` tables with ``name``, ``field`` and ``pattern``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(name, "", f"not valid TOML: {exc}")]) from None
    problems: list[Problem] = []
    for key in sorted(set(data) - {"rule"}):
        problems.append(Problem(name, key, "unknown key (expected only [[rule]] tables)"))
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(Problem(name, "rule", "expected an array of tables ([[rule]])"))
        tables = []
    rules: list[Rule] = []
    names: set[str] = set()
    for i, table in enumerate(tables):
        where = f"rule[{i}]"
        for key in sorted(set(table) - {"name", "field", "pattern"}):
            problems.append(Problem(name, f"{where}.{key}", "unknown key (expected name, field, pattern)"))
        rule_name = table.get("name")
        if not isinstance(rule_name, str) or not rule_name.strip():
            problems.append(Problem(name, f"{where}.name", "expected a non-empty string"))
        elif rule_name in names:
            problems.append(Problem(name, f"{where}.name", f"expected a unique name, {rule_name!r} repeats"))
        else:
            names.add(rule_name)
        field = table.get("field")
        if field not in FIELDS:
            problems.append(
                Problem(
                    name, f"{where}.field", f"expected one of {', '.join(map(repr, FIELDS))}, got {field!r}"
                )
            )
        pattern = table.get("pattern")
        compiled = None
        if not isinstance(pattern, str) or not pattern:
            problems.append(Problem(name, f"{where}.pattern", "expected a non-empty regular expression"))
        else:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                problems.append(Problem(name, f"{where}.pattern", f"expected a regular expression: {exc}"))
            else:
                if compiled.groups != 1:
                    problems.append(
                        Problem(
                            name,
                            f"{where}.pattern",
                            f"expected exactly one capture group (the number), got {compiled.groups}",
                        )
                    )
        if compiled is not None and compiled.groups == 1 and isinstance(rule_name, str) and field in FIELDS:
            rules.append(Rule(rule_name, field, compiled))
    if problems:
        raise ConfigError(problems)
    return Matcher(tuple(rules))


def _clean(text: str | None) -> str:
    """A number as quoted: surrounding blanks and trailing punctuation dropped."""
    if not text:
        return ""
    return text.strip().rstrip(".,;:").strip()[:_MAX_NUMBER]


def _field_numbers(lines: Iterable[MatchableLine]) -> tuple[set[str], set[str]]:
    accounts: set[str] = set()
    contracts: set[str] = set()
    for line in lines:
        if line.account:
            accounts.add(_clean(line.account))
        if line.contract:
            contracts.add(_clean(line.contract))
    accounts.discard("")
    contracts.discard("")
    return accounts, contracts


def directory_for(session: Session, matcher: Matcher, lines: Sequence[MatchableLine]) -> Directory:
    """What :func:`decide` needs for ``lines``: the accounts and contracts their fields name, then
    those the purpose texts name of the lines the fields do not decide (two queries each)."""
    directory = load_directory(session, *_field_numbers(lines))
    accounts: set[str] = set()
    contracts: set[str] = set()
    for line in lines:
        if _by_fields(directory, line, []) is None:
            found_accounts, found_contracts = matcher.find(line.purpose)
            accounts.update(n for n in found_accounts if n not in directory.accounts)
            contracts.update(c for c in found_contracts if c not in directory.contracts)
    if accounts or contracts:
        more = load_directory(session, accounts, contracts)
        directory.accounts.update(more.accounts)
        directory.contracts.update(more.contracts)
    return directory


_ACCOUNTS_PG = (
    "SELECT id, number, ledger_account_id, currency, status FROM accounts WHERE number = ANY(:numbers)"
)
_CONTRACTS_PG = (
    "SELECT c.contract_number, a.id, a.number, a.ledger_account_id, a.currency, a.status"
    " FROM customers c JOIN accounts a ON a.customer_id = c.id"
    " WHERE c.contract_number = ANY(:numbers) ORDER BY a.id"
)


def load_directory(session: Session, account_numbers: set[str], contract_numbers: set[str]) -> Directory:
    """The accounts with those numbers, and the accounts of the customers with those contracts."""
    accounts: dict[str, Candidate] = {}
    contracts: dict[str, list[Candidate]] = {}
    if session.get_bind().dialect.name == "postgresql":  # one array parameter: cheap for big batches
        if account_numbers:
            for row in session.execute(text(_ACCOUNTS_PG), {"numbers": list(account_numbers)}):
                accounts[row[1]] = Candidate(*row)
        if contract_numbers:
            for contract, *rest in session.execute(text(_CONTRACTS_PG), {"numbers": list(contract_numbers)}):
                contracts.setdefault(contract, []).append(Candidate(*rest))
        return Directory(accounts, contracts)
    columns = (Account.id, Account.number, Account.ledger_account_id, Account.currency, Account.status)
    numbers = sorted(account_numbers)
    for i in range(0, len(numbers), _CHUNK):
        for row in session.execute(select(*columns).where(Account.number.in_(numbers[i : i + _CHUNK]))):
            accounts[row.number] = Candidate(*row)
    wanted_contracts = sorted(contract_numbers)
    for i in range(0, len(wanted_contracts), _CHUNK):
        rows = session.execute(
            select(Customer.contract_number, *columns)
            .join(Account, Account.customer_id == Customer.id)
            .where(Customer.contract_number.in_(wanted_contracts[i : i + _CHUNK]))
            .order_by(Account.id)
        )
        for contract, *rest in rows:
            contracts.setdefault(contract, []).append(Candidate(*rest))
    return Directory(accounts, contracts)


def _usable(candidate: Candidate, currency: str) -> str:
    """Why ``candidate`` cannot take the line's money ("" if it can)."""
    if candidate.status != "active":
        return f"account {candidate.number} is closed"
    if candidate.currency != currency:
        return f"account {candidate.number} is kept in {candidate.currency}, the line is in {currency}"
    return ""


def _one_of(candidates: Sequence[Candidate], currency: str, what: str, notes: list[str]) -> Match | None:
    """The one usable account among ``candidates``; ambiguity is a final answer (unmatched)."""
    usable: dict[int, Candidate] = {}
    for candidate in candidates:
        why = _usable(candidate, currency)
        if why:
            notes.append(why)
        else:
            usable.setdefault(candidate.account_id, candidate)
    if len(usable) == 1:
        return Match(next(iter(usable.values())), what)
    if len(usable) > 1:
        numbers = ", ".join(c.number for c in usable.values())
        return Match(None, f"ambiguous: {what} names accounts {numbers}")
    return None


def _by_fields(directory: Directory, line: MatchableLine, notes: list[str]) -> Match | None:
    """The match the account field, else the contract field, decides; None when they do not."""
    number = _clean(line.account)
    if number:
        found = directory.accounts.get(number)
        if found is None:
            notes.append(f"account {number} does not exist")
        else:
            why = _usable(found, line.currency)
            if not why:
                return Match(found, "account field")
            notes.append(why)
    contract = _clean(line.contract)
    if contract:
        of_contract = directory.contracts.get(contract, [])
        if not of_contract:
            notes.append(f"contract {contract} does not exist")
        else:
            decided = _one_of(of_contract, line.currency, f"contract {contract}", notes)
            if decided is not None:
                return decided
            notes.append(f"contract {contract} has no open account in {line.currency}")
    return None


def decide(matcher: Matcher, directory: Directory, line: MatchableLine) -> Match:
    """Pair ``line`` with one open account (see the module docstring for the order), or say why not."""
    notes: list[str] = []
    decided = _by_fields(directory, line, notes)
    if decided is not None:
        return decided
    found_accounts, found_contracts = matcher.find(line.purpose)
    candidates = [directory.accounts[n] for n in found_accounts if n in directory.accounts]
    notes.extend(f"account {n} does not exist" for n in found_accounts if n not in directory.accounts)
    for c in found_contracts:
        candidates.extend(directory.contracts.get(c, []))
        if c not in directory.contracts:
            notes.append(f"contract {c} does not exist")
    if candidates:
        decided = _one_of(candidates, line.currency, "purpose text", notes)
        if decided is not None:
            return decided
    if not (_clean(line.account) or _clean(line.contract) or found_accounts or found_contracts):
        notes.append("no account or contract number in the line")
    return Match(None, "; ".join(dict.fromkeys(notes)))
