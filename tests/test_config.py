"""Tests of the config loader: shipped files load, every problem is reported, secrets stay secret."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re
from pathlib import Path

import pytest

from billing import config as config_module
from billing.config import (
    CURRENCY_MINOR_UNITS,
    SCHEMA,
    Config,
    ConfigError,
    Problem,
    Secret,
    default_config_path,
    load_config,
)

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """
[isp]
name = "Test ISP"
currency = "EUR"
time_zone = "Europe/Berlin"

[database]
url = "sqlite:///test.db"
"""

DB_SECRET = "hunter2-pa55"


def write(tmp_path: Path, text: str, name: str = "billing.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_database(database: str) -> str:
    """MINIMAL with its [database] table replaced."""
    return MINIMAL.split("[database]")[0] + "[database]\n" + database + "\n"


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


def keyed(problems: list[Problem]) -> dict[str, str]:
    return {p.key: p.message for p in problems}


# --------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", ["billing.toml", "demo.toml"])
def test_shipped_config_loads_cleanly(name: str) -> None:
    env = {
        "BILLING_NAS_SECRET": "a-shared-secret",
        "BILLING_BANK1_PASSWORD": "pw",
        "BILLING_BANK1_SIGNING_KEY": "k",
        "BILLING_SWITCH_READ_COMMUNITY": "public",
        "BILLING_SWITCH_WRITE_COMMUNITY": "private",
        "BILLING_SWITCH_PASSWORD": "switch-password",
    }
    config = load_config(REPO / "conf" / name, env=env)
    assert isinstance(config, Config)
    assert config.source == REPO / "conf" / name


def test_demo_config_uses_relative_sqlite_file_under_var() -> None:
    config = load_config(REPO / "conf" / "demo.toml", env={})
    assert config.database.sqlalchemy_url() == "sqlite:///var/demo.db"


def test_shipped_example_documents_every_schema_key() -> None:
    text = (REPO / "conf" / "billing.toml").read_text(encoding="utf-8")
    for section in SCHEMA:
        assert re.search(rf"^\[{section.name}\]", text, re.M), section.name
        for key in section.keys:
            assert re.search(rf"^#?{key} = ", text, re.M), f"{section.name}.{key}"


def test_defaults_apply_when_optional_keys_and_tables_are_absent(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert config.database.pool_size == 10
    assert config.database.pool_timeout_s == 30.0
    assert config.database.statement_timeout_ms == 30_000
    assert config.database.echo is False
    assert config.database.password is None
    assert config.logging.level == "info"
    assert config.logging.format == "text"
    assert config.cli.page_size == 50


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cli.page_size = 10  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.database.url._value = "x"  # type: ignore[misc]


def test_minor_units_come_from_the_currency_table(tmp_path: Path) -> None:
    for currency, digits in [("JPY", 0), ("KWD", 3), ("UAH", 2)]:
        path = write(tmp_path, MINIMAL.replace('"EUR"', f'"{currency}"'))
        assert load_config(path, env={}).isp.minor_units == digits
    assert CURRENCY_MINOR_UNITS["BHD"] == 3


# --------------------------------------------------------------------------- error reporting


def test_several_errors_in_one_file_are_all_reported_with_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[isp]
name = ""
currency = "EURO"
time_zone = "Europe/Berlin"

[database]
url = "sqlite:///x.db"
pool_size = "ten"
echo = "yes"

[logging]
level = "verbose"
""",
    )
    problems = problems_of(path)
    assert set(keyed(problems)) == {
        "isp.name",
        "isp.currency",
        "database.pool_size",
        "database.echo",
        "logging.level",
    }
    assert all(p.file == str(path) for p in problems)
    assert (
        str(Problem(str(path), "database.pool_size", keyed(problems)["database.pool_size"]))
        == f'{path}: database.pool_size: expected an integer from 1 to 200, got "ten"'
    )
    assert 'one of "debug", "info", "warning", "error", got "verbose"' in keyed(problems)["logging.level"]


def test_config_error_message_lists_every_problem_one_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "sqlite:///x.db"\npool_size = 0\necho = 1'))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    lines = str(caught.value).splitlines()
    assert lines == [str(p) for p in caught.value.problems]
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: database.") for line in lines)


def test_missing_required_keys_are_reported_with_what_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, '[isp]\nname = "X"\n[database]\npool_size = 5\n')
    found = keyed(problems_of(path))
    assert set(found) == {"isp.currency", "isp.time_zone", "database.url"}
    assert found["database.url"].startswith("required key missing; expected a URL starting with sqlite:///")


def test_missing_required_table_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.split("[database]")[0])
    found = keyed(problems_of(path))
    assert found == {"database": "missing table [database] (required keys: url)"}


def test_unknown_key_is_reported_with_known_keys_of_its_table(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "sqlite:///x.db"\npool_sise = 5'))
    (problem,) = problems_of(path)
    assert problem.key == "database.pool_sise"
    assert problem.message.startswith("unknown key (did you mean pool_size?)")
    assert "url, password, pool_size, pool_timeout_s, statement_timeout_ms, echo" in problem.message


def test_unknown_table_is_reported_with_known_tables(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "\n[loging]\nlevel = 'debug'\n")
    (problem,) = problems_of(path)
    assert problem.key == "loging"
    assert "unknown table (did you mean logging?)" in problem.message
    assert "isp, database, logging, cli" in problem.message


def test_table_given_as_plain_value_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "cli = 5\n" + MINIMAL)
    assert keyed(problems_of(path)) == {"cli": "expected a table [cli], got 5"}


def test_malformed_toml_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[isp]\nname = "X"\ncurrency = \n')
    (problem,) = problems_of(path)
    assert problem.file == str(path)
    assert "invalid TOML at line 3" in problem.message
    assert str(problem).startswith(f"{path}: invalid TOML at line 3, column")


def test_unreadable_config_file_is_reported(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "absent.toml")
    assert problem.file == str(tmp_path / "absent.toml")
    assert "cannot read config file" in problem.message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("pool_size = 201", "expected an integer from 1 to 200, got 201"),
        ("pool_size = 2.5", "expected an integer from 1 to 200, got 2.5"),
        ("pool_size = true", "expected an integer from 1 to 200, got true"),
        ("pool_timeout_s = 0.05", "expected a number from 0.1 to 300 (seconds), got 0.05"),
        ("pool_timeout_s = 301", "expected a number from 0.1 to 300 (seconds), got 301"),
        ("statement_timeout_ms = -1", "from 0 to 3600000 (milliseconds, 0 = no limit), got -1"),
    ],
)
def test_range_errors_name_the_expected_range(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, with_database(f'url = "sqlite:///x.db"\n{line}'))
    (problem,) = problems_of(path)
    assert expected in problem.message


def test_integer_is_accepted_for_a_float_key(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "sqlite:///x.db"\npool_timeout_s = 5'))
    timeout = load_config(path, env={}).database.pool_timeout_s
    assert timeout == 5.0
    assert isinstance(timeout, float)


def test_bad_time_zone_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("Europe/Berlin", "Europe/Berlim"))
    (problem,) = problems_of(path)
    assert problem.key == "isp.time_zone"
    assert problem.message.startswith("expected an IANA time zone name")
    assert problem.message.endswith('got "Europe/Berlim"')


@pytest.mark.parametrize("currency", ["XYZ", "eur", "EURO"])
def test_bad_or_unknown_currency_is_reported(tmp_path: Path, currency: str) -> None:
    path = write(tmp_path, MINIMAL.replace('"EUR"', f'"{currency}"'))
    (problem,) = problems_of(path)
    assert problem.key == "isp.currency"
    assert "ISO 4217" in problem.message and "EUR, GBP" in problem.message
    assert problem.message.endswith(f'got "{currency}"')


def test_unsupported_database_scheme_is_reported_without_echoing_the_url(tmp_path: Path) -> None:
    path = write(tmp_path, with_database(f'url = "mysql://bill:{DB_SECRET}@db/billing"'))
    (problem,) = problems_of(path)
    assert problem.key == "database.url"
    expected = "expected a URL starting with sqlite:///, postgresql:// or postgresql+psycopg://"
    assert expected in problem.message
    assert DB_SECRET not in str(problem)


# --------------------------------------------------------------------------- secrets


def test_database_url_secret_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = { env = "BILLING_DB_URL" }'))
    env = {"BILLING_DB_URL": f"postgresql+psycopg://bill:{DB_SECRET}@db/billing"}
    assert load_config(path, env=env).database.sqlalchemy_url() == env["BILLING_DB_URL"]


def test_password_secret_from_file_relative_to_config_dir_is_stripped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db_password").write_text(DB_SECRET + "\n", encoding="utf-8")
    database = 'url = "postgresql://bill@db:5432/billing"\npassword = { file = "secrets/db_password" }'
    path = write(tmp_path, with_database(database))
    url = load_config(path, env={}).database.sqlalchemy_url()
    assert url == f"postgresql+psycopg://bill:{DB_SECRET}@db:5432/billing"


def test_missing_env_var_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "postgresql://bill@db/b"\npassword = { env = "DB_PASS" }'))
    assert keyed(problems_of(path, env={"OTHER": "x"})) == {
        "database.password": "environment variable DB_PASS is not set"
    }


def test_unreadable_secret_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "postgresql://bill@db/b"\npassword = { file = "nope" }'))
    (problem,) = problems_of(path)
    assert problem.key == "database.password"
    assert f"cannot read secret file {tmp_path / 'nope'}" in problem.message


@pytest.mark.parametrize(
    "value",
    ['{ vault = "db" }', '{ env = "A", file = "b" }', "42", '""'],
)
def test_malformed_secret_is_an_error_naming_the_key(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, with_database(f'url = "postgresql://bill@db/b"\npassword = {value}'))
    (problem,) = problems_of(path)
    assert problem.key == "database.password"
    assert problem.message.startswith("expected a non-empty string, { env")


def test_secrets_never_appear_in_repr_str_or_public_dict(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(f"postgresql://bill@db/billing?application_name={DB_SECRET}u")
    path = write(tmp_path, with_database('url = { file = "url" }\npassword = { env = "PW" }'))
    config = load_config(path, env={"PW": DB_SECRET})
    public = config.to_public_dict()
    dumped = json.dumps(public)
    assert public["database"]["url"] == "********"
    assert public["database"]["password"] == "********"
    for text in (repr(config), str(config), repr(config.database), f"{config.database.password}", dumped):
        assert DB_SECRET not in text
    assert repr(config.database.password) == str(config.database.password) == "Secret('********')"
    assert DB_SECRET not in repr(dataclasses.asdict(config))
    assert copy.deepcopy(config) == config
    assert DB_SECRET in config.database.sqlalchemy_url()


def test_secret_reveals_its_value_only_on_request() -> None:
    secret = Secret(DB_SECRET)
    assert secret.reveal() == DB_SECRET
    assert secret == Secret(DB_SECRET) and secret != Secret("other")
    assert copy.copy(secret) is secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_postgresql_url_is_normalised_to_psycopg(tmp_path: Path) -> None:
    path = write(
        tmp_path, with_database('url = "postgresql://bill:pw@db.example:5432/billing?sslmode=require"')
    )
    url = load_config(path, env={}).database.sqlalchemy_url()
    assert url == "postgresql+psycopg://bill:pw@db.example:5432/billing?sslmode=require"


def test_password_is_injected_url_encoded(tmp_path: Path) -> None:
    database = 'url = "postgresql+psycopg://bill@db/billing"\npassword = { env = "PW" }'
    path = write(tmp_path, with_database(database))
    url = load_config(path, env={"PW": "p@ss/w:rd"}).database.sqlalchemy_url()
    assert url == "postgresql+psycopg://bill:p%40ss%2Fw%3Ard@db/billing"


def test_password_with_sqlite_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "sqlite:///x.db"\npassword = "pw"'))
    (problem,) = problems_of(path)
    assert problem.key == "database.password"
    assert "SQLite" in problem.message


def test_password_with_url_that_already_has_one_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, with_database('url = "postgresql://bill:one@db/b"\npassword = "two"'))
    (problem,) = problems_of(path)
    assert problem.key == "database.password"
    assert "already contains a password" in problem.message


# --------------------------------------------------------------------------- default path


def test_default_config_path_prefers_billing_config_env(tmp_path: Path) -> None:
    assert default_config_path(env={"BILLING_CONFIG": "/srv/b.toml"}) == Path("/srv/b.toml")


def test_default_config_path_falls_back_to_system_then_repo_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "etc-billing.toml"
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG_PATH", system)
    assert default_config_path(env={}) == Path("conf/billing.toml")
    system.write_text("")
    assert default_config_path(env={}) == system


# --------------------------------------------------------------------------- [aaa]

AAA = """
[aaa]
auth_port = 11812
acct_port = 11813

[[aaa.nas]]
name = "bras-1"
address = "10.1.0.0/16"
secret = "s3cret-s3cret-s3cret"
vendor = "mikrotik"

[[aaa.nas]]
name = "bras-2"
address = "10.1.2.3"
secret = { env = "NAS2" }
identification = ["mac", "port"]

[[aaa.category_policy]]
category = "business"
out_of_funds = "reject"
"""


def test_aaa_section_builds_nas_clients_and_policies(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + AAA), env={"NAS2": "other-secret"})
    aaa = config.aaa
    assert (aaa.listen.auth_port, aaa.listen.acct_port) == (11812, 11813)
    assert [c.name for c in aaa.nas] == ["bras-1", "bras-2"]
    assert aaa.nas[1].secret == b"other-secret" and aaa.nas[1].identification == ("mac", "port")
    assert aaa.client_for("10.1.2.3").name == "bras-2"  # the most specific network wins
    assert aaa.client_for("10.1.9.9").name == "bras-1"
    assert aaa.client_for("192.0.2.1") is None
    assert aaa.policy_for("business").out_of_funds == "reject"
    assert aaa.policy_for("residential").out_of_funds == "walled_garden"


def test_aaa_is_optional(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), env={}).aaa.nas == ()


def test_nas_secrets_never_appear_in_the_public_dump(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + AAA), env={"NAS2": "other-secret"})
    dumped = json.dumps(config.to_public_dict())
    assert "s3cret" not in dumped and "other-secret" not in dumped
    assert config.to_public_dict()["aaa"]["nas"][0]["network"] == "10.1.0.0/16"


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        (('address = "10.1.0.0/16"', 'address = "10.1.0.1/16"'), "aaa.nas[0].address", "host bits"),
        (('vendor = "mikrotik"', 'vendor = "nokia"'), "aaa.nas[0].vendor", "mikrotik"),
        (
            ('identification = ["mac", "port"]', 'identification = ["mac", "imsi"]'),
            "aaa.nas[1].identification",
            "login",
        ),
        (('name = "bras-2"', 'name = "bras-1"'), "aaa.nas", "more than once"),
        (("acct_port = 11813", "acct_port = 11812"), "aaa.acct_port", "differ"),
        (
            ('category = "business"', 'category = "business"\ncolour = "red"'),
            "aaa.category_policy[0].colour",
            "unknown key",
        ),
    ],
)
def test_aaa_problems_name_the_nested_key(
    tmp_path: Path, change: tuple[str, str], key: str, fragment: str
) -> None:
    problems = keyed(problems_of(write(tmp_path, MINIMAL + AAA.replace(*change)), env={"NAS2": "x-secret"}))
    assert key in problems, problems
    assert fragment in problems[key]


BANK = """
[[payments.bank]]
code = "{code}"
name = "Bank"
password = "pw"
signing_key = "key"
allow_from = [{allow}]
"""


def test_payment_banks_are_built_with_their_networks_and_secrets(tmp_path: Path) -> None:
    text = MINIMAL + BANK.format(code="bank1", allow='"192.0.2.10", "198.51.100.0/28"')
    config = load_config(write(tmp_path, text), env={})
    bank = config.payments.bank("bank1")
    assert bank is not None and config.payments.bank("bank2") is None
    assert bank.allows("192.0.2.10") and bank.allows("198.51.100.15") and not bank.allows("198.51.100.16")
    assert bank.password.reveal() == "pw" and "pw" not in repr(bank)
    assert not config.payments.tls and config.payments.http_port == 8080


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[payments]\nlisten_address = "192.0.2.1"\n', "payments.plain_http", "only on a loopback"),
        ('[payments]\ntls_certificate = "cert.pem"\n', "payments.tls_private_key", "go together"),
        ('[payments]\ntls_certificate = "c.pem"\ntls_private_key = "k.pem"\n', "payments.tls_certificate",
         "no such file"),
        (BANK.format(code="cashier", allow='"127.0.0.1"'), "payments.bank[0].code", 'not "cashier"'),
        (BANK.format(code="b1", allow='"300.1.1.1"'), "payments.bank[0].allow_from", "not an IP address"),
        (BANK.format(code="b1", allow='"127.0.0.1"') * 2, "payments.bank", "used more than once"),
    ],
)  # fmt: skip
def test_payment_settings_errors_name_the_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, MINIMAL + text), env={})
    assert f"{key}: " in str(error.value) and expected in str(error.value)


# --------------------------------------------------------------------------- [provisioning]

NAS = """
[[aaa.nas]]
name = "{name}"
address = "{address}"
secret = "a-shared-secret"
vendor = "{vendor}"
"""


def test_coa_port_defaults_to_3799_and_to_1700_for_mikrotik(tmp_path: Path) -> None:
    text = MINIMAL + NAS.format(name="a", address="10.0.0.1", vendor="cisco")
    text += NAS.format(name="b", address="10.0.0.2", vendor="mikrotik")
    config = load_config(write(tmp_path, text), env={})
    assert [(n.name, n.coa_port, n.coa_nak) for n in config.aaa.nas] == [
        ("a", 3799, "disconnect"),
        ("b", 1700, "disconnect"),
    ]


def test_provisioning_defaults_keep_the_worker_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert config.provisioning.worker is False
    assert config.provisioning.max_attempts == 5
    assert config.provisioning.credentials == () and config.provisioning.nms == ()


def test_provisioning_credentials_and_exporters_are_built(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[provisioning]
worker = true

[[provisioning.credentials]]
name = "sw"
read_community = "public"
write_community = { env = "WRITE" }
username = "admin"
password = "pw"

[[provisioning.nms]]
type = "rest"
name = "hook"
url = "http://127.0.0.1:9/hook"
secret = "0123456789abcdef0123456789abcdef"

[[provisioning.nms]]
type = "file"
name = "drop"
directory = "/tmp"
format = "csv"
"""
    )
    config = load_config(write(tmp_path, text), env={"WRITE": "wr1te-c0mmunity"})
    creds = config.provisioning.credentials_named("sw")
    assert creds is not None and creds.write_community == "wr1te-c0mmunity" and creds.password == "pw"
    assert "wr1te-c0mmunity" not in repr(creds) and "wr1te-c0mmunity" not in str(config.to_public_dict())
    hook, drop = config.provisioning.nms
    assert type(hook).__name__ == "RestExportSettings" and hook.url.endswith("/hook")
    assert type(drop).__name__ == "FileExportSettings" and drop.format == "csv"


def test_provisioning_problems_name_the_key_and_what_was_expected(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[provisioning.credentials]]
name = "v3"
snmp_version = "v3"

[[provisioning.nms]]
type = "rest"
name = "hook"

[[provisioning.nms]]
type = "file"
name = "drop"
directory = "/tmp"
url = "http://127.0.0.1/"
"""
    )
    found = {p.key: p.message for p in problems_of(write(tmp_path, text))}
    assert "required when snmp_version is v3" in found["provisioning.credentials[0].v3_user"]
    assert "required for type = 'rest'" in found["provisioning.nms[0].url"]
    assert "required for type = 'rest'" in found["provisioning.nms[0].secret"]
    assert "not used by type = 'file'" in found["provisioning.nms[1].url"]


def test_provisioning_backoff_cap_below_the_first_backoff_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "\n[provisioning]\nbackoff_s = 10\nbackoff_max_s = 1\n"
    found = {p.key: p.message for p in problems_of(write(tmp_path, text))}
    assert found == {"provisioning.backoff_max_s": "must be >= backoff_s"}
