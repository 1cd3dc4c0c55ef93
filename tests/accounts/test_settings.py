"""Production settings pass the deploy checks; env helpers fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import _stack
from clawwits import env
from clawwits.env import ConfigError, DatabaseConfig

ROOT = Path(__file__).resolve().parents[2]
STRONG_SECRET = "k3J9-vQ2xR7_mN4pL8wZ1tY6uH5sD0fG-aB3cE7iO9qW2eT4yU6"
# Variables a developer's shell or the test runner may set that would change what is checked.
_CLEARED = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DB_PREPARED_STATEMENTS",
}


def _manage(*args: str, **env_vars: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, **env_vars},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _production_env() -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": STRONG_SECRET,
        "ALLOWED_HOSTS": "clawwits.example.com",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
    }


def test_deploy_check_passes_with_production_environment():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **_production_env())

    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (
        0,
        "System check identified no issues (0 silenced).",
        "",
    )


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"DEBUG": "1"}, "security.W018"),
        ({"SECURE_SSL_REDIRECT": "0"}, "security.W008"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECRET_KEY": "short"}, "security.W009"),
    ],
)
def test_deploy_check_catches_an_unsafe_production_setting(overrides, check_id):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", **{**_production_env(), **overrides}
    )

    assert result.returncode == 1
    assert check_id in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG must be one of 1/0/true/false/yes/no/on/off, got 'maybe'"),
        ({"JWT_ACCESS_TTL_S": "soon"}, "JWT_ACCESS_TTL_S must be an integer, got 'soon'"),
        ({"JWT_ACCESS_TTL_S": "5"}, "JWT_ACCESS_TTL_S must be >= 30, got 5"),
        ({"WITS_CURRENCY": "eur"}, "WITS_CURRENCY must be VND or USD, got 'EUR'"),
        (
            {"DATABASE_URL": "mysql://u:p@h/db"},
            "DATABASE_URL scheme 'mysql' is not supported (postgres or sqlite)",
        ),
    ],
)
def test_bad_environment_stops_the_process_with_the_variables_name(overrides, message):
    result = _manage("check", **{**_production_env(), **overrides})

    assert result.returncode == 1
    assert f"clawwits.env.ConfigError: {message}" in result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("CW_TEST_FLAG", raw)

    assert env.env_bool("CW_TEST_FLAG", not expected) is expected


def test_env_helpers_use_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("CW_TEST_VAR", raising=False)

    assert env.env_bool("CW_TEST_VAR", True) is True
    assert env.env_int("CW_TEST_VAR", 7) == 7
    assert env.env_float("CW_TEST_VAR", 1.5) == 1.5
    assert env.env_str("CW_TEST_VAR", "x") == "x"
    assert env.env_list("CW_TEST_VAR", ["a"]) == ["a"]


@pytest.mark.parametrize("raw", ["2", "maybe", "enabled", "tru"])
def test_env_bool_refuses_anything_else(monkeypatch, raw):
    monkeypatch.setenv("CW_TEST_FLAG", raw)

    with pytest.raises(ConfigError) as error:
        env.env_bool("CW_TEST_FLAG", False)

    assert str(error.value) == (
        f"CW_TEST_FLAG must be one of 1/0/true/false/yes/no/on/off, got {raw!r}"
    )


def test_env_int_reads_underscored_numbers_and_blank_means_default(monkeypatch):
    monkeypatch.setenv("CW_TEST_INT", "1_000_000")
    assert env.env_int("CW_TEST_INT", 0) == 1_000_000
    monkeypatch.setenv("CW_TEST_INT", "  ")
    assert env.env_int("CW_TEST_INT", 5) == 5


@pytest.mark.parametrize(
    ("raw", "minimum", "message"),
    [
        ("ten", None, "CW_TEST_INT must be an integer, got 'ten'"),
        ("1.5", None, "CW_TEST_INT must be an integer, got '1.5'"),
        ("-1", 0, "CW_TEST_INT must be >= 0, got -1"),
        ("29", 30, "CW_TEST_INT must be >= 30, got 29"),
    ],
)
def test_env_int_refuses_bad_values(monkeypatch, raw, minimum, message):
    monkeypatch.setenv("CW_TEST_INT", raw)

    with pytest.raises(ConfigError) as error:
        env.env_int("CW_TEST_INT", 1, minimum=minimum)

    assert str(error.value) == message


@pytest.mark.parametrize(
    ("raw", "minimum", "message"),
    [
        ("fast", None, "CW_TEST_FLOAT must be a number, got 'fast'"),
        ("0.05", 0.1, "CW_TEST_FLOAT must be >= 0.1, got 0.05"),
    ],
)
def test_env_float_refuses_bad_values(monkeypatch, raw, minimum, message):
    monkeypatch.setenv("CW_TEST_FLOAT", raw)

    with pytest.raises(ConfigError) as error:
        env.env_float("CW_TEST_FLOAT", 1.0, minimum=minimum)

    assert str(error.value) == message


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("CW_TEST_LIST", " a.example.com, ,b.example.com ,")

    assert env.env_list("CW_TEST_LIST", []) == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://cw:p%40ss@db.internal:5433/clawwits?sslmode=require",
            DatabaseConfig(
                engine="django.db.backends.postgresql",
                name="clawwits",
                user="cw",
                password="p@ss",
                host="db.internal",
                port="5433",
                options=(("sslmode", "require"),),
            ),
        ),
        (
            "postgres://cw@/clawwits?host=/run/postgresql&port=5433",
            DatabaseConfig(
                engine="django.db.backends.postgresql",
                name="clawwits",
                user="cw",
                options=(("host", "/run/postgresql"), ("port", "5433")),
            ),
        ),
        (
            "postgresql://localhost/cw",
            DatabaseConfig(engine="django.db.backends.postgresql", name="cw", host="localhost"),
        ),
        (
            "sqlite:////var/lib/cw/db.sqlite3",
            DatabaseConfig(engine="django.db.backends.sqlite3", name="/var/lib/cw/db.sqlite3"),
        ),
        (
            "sqlite:///db.sqlite3",
            DatabaseConfig(engine="django.db.backends.sqlite3", name="db.sqlite3"),
        ),
    ],
)
def test_parse_database_url(url, expected):
    assert env.parse_database_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@h/db", "DATABASE_URL scheme 'mysql' is not supported (postgres or sqlite)"),
        ("postgres://u:p@h:5432/", "DATABASE_URL must name a database: postgres://.../NAME"),
        ("sqlite:///", "DATABASE_URL sqlite:/// needs a file path"),
        ("db.sqlite3", "DATABASE_URL scheme '' is not supported (postgres or sqlite)"),
    ],
)
def test_parse_database_url_refuses_bad_urls(url, message):
    with pytest.raises(ConfigError) as error:
        env.parse_database_url(url)

    assert str(error.value) == message


@pytest.mark.parametrize(
    ("redis_url", "broker_url"),
    [
        ("redis://cache.internal:6379/0", "redis://cache.internal:6379/0"),
        ("rediss://:pw@cache.internal:6380/1", "rediss://:pw@cache.internal:6380/1"),
        ("unix:///run/redis/redis.sock", "redis+socket:///run/redis/redis.sock"),
        (
            "unix:///run/redis/redis.sock?db=2",
            "redis+socket:///run/redis/redis.sock?virtual_host=2",
        ),
        (
            "unix://:s3cret@/run/redis/redis.sock?db=1",
            "redis+socket://:s3cret@/run/redis/redis.sock?virtual_host=1",
        ),
    ],
)
def test_celery_broker_url_names_a_redis_unix_socket_as_kombu_does(redis_url, broker_url):
    assert env.celery_broker_url(redis_url) == broker_url


@pytest.fixture(scope="module")
def socket_env() -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL as unix sockets: those of scripts/services.py's servers (it
    names them), or, where the suite was given servers of its own, throwaway ones started here
    with the same context managers."""
    if "DATABASE_SOCKET_URL" in os.environ and "REDIS_SOCKET_URL" in os.environ:
        yield {
            "DATABASE_URL": os.environ["DATABASE_SOCKET_URL"],
            "REDIS_URL": os.environ["REDIS_SOCKET_URL"],
        }
        return
    services = _stack.services_module()
    with tempfile.TemporaryDirectory(prefix="clawwits-sockets-") as work:
        os.chmod(work, 0o755)  # PostgreSQL runs as the postgres user
        pg_dir, redis_dir = os.path.join(work, "p"), os.path.join(work, "r")
        with services.postgres(pg_dir) as database_url, services.redis(redis_dir):
            yield {
                "DATABASE_URL": services.postgres_socket_url(database_url, pg_dir),
                "REDIS_URL": services.redis_socket_url(redis_dir),
            }


def test_the_gateway_reaches_postgres_redis_and_the_broker_over_unix_sockets(socket_env):
    # Given the URLs a single-host deployment uses
    # When the ORM, the rate limiter's Redis client, the cache and Celery's broker connect
    check = (
        "from django.db import connection; from django.core.cache import cache; "
        "from clawwits import redisclient; from clawwits.celery import app; "
        "from django.test import Client; "
        "cursor = connection.cursor(); cursor.execute('SELECT 1'); "
        "cache.set('unix-socket-check', 'yes', 5); "
        "broker = app.connection_for_write(); broker.ensure_connection(max_retries=1); "
        "client = Client(HTTP_HOST='127.0.0.1'); "
        "print(connection.settings_dict['OPTIONS']['host'], cursor.fetchone()[0], "
        "redisclient.ping(), cache.get('unix-socket-check'), "
        "broker.default_channel.client.connection_pool.connection_kwargs.get('path'), "
        "client.get('/readyz', secure=True).status_code); broker.release()"
    )
    result = _manage("shell", "--verbosity=0", "-c", check, **socket_env)

    # Then every one of them answers through the socket
    socket_dir = socket_env["DATABASE_URL"].split("host=", 1)[1].split("&", 1)[0]
    redis_socket = socket_env["REDIS_URL"].removeprefix("unix://").split("?", 1)[0]
    assert (result.returncode, result.stdout.split()) == (
        0,
        [socket_dir, "1", "True", "yes", redis_socket, "200"],
    ), result.stderr


@pytest.mark.parametrize(("value", "threshold"), [(None, "5"), ("1", "5"), ("0", "None")])
def test_db_prepared_statements_sets_psycopg_prepare_threshold(value, threshold):
    env_vars = {"DATABASE_URL": os.environ["DATABASE_URL"]}
    if value is not None:
        env_vars["DB_PREPARED_STATEMENTS"] = value

    result = _manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])",
        **env_vars,
    )

    assert (result.returncode, result.stdout.strip()) == (0, threshold), result.stderr
