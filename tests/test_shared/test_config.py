"""Settings are read from an explicit mapping, validated, and name the bad variable."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.errors import InputError


def test_an_empty_environment_means_the_embedded_default_with_safe_limits() -> None:
    s = Settings.from_env({})
    assert s.embedded
    assert s.soft_time_limit_s < s.hard_time_limit_s < s.visibility_timeout_s
    assert s.max_retries == 3


def test_a_redis_broker_doubles_as_the_results_store_unless_one_is_given() -> None:
    s = Settings.from_env({"TAXVIEW_BROKER_URL": "redis://h:6379/0"})
    assert s.redis_url == "redis://h:6379/0" and s.broker_is_redis
    s = Settings.from_env(
        {"TAXVIEW_BROKER_URL": "redis://h:6379/0", "TAXVIEW_REDIS_URL": "redis://r:6379/1"}
    )
    assert s.redis_url == "redis://r:6379/1"


def test_a_rabbitmq_broker_needs_a_redis_results_store() -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_BROKER_URL": "amqp://guest:guest@localhost:5672//"})
    assert err.value.field == "TAXVIEW_REDIS_URL"
    s = Settings.from_env(
        {
            "TAXVIEW_BROKER_URL": "amqp://guest:guest@localhost:5672//",
            "TAXVIEW_REDIS_URL": "redis://localhost:6379/1",
        }
    )
    assert not s.broker_is_redis


def test_a_non_numeric_limit_names_the_variable() -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_HARD_TIME_LIMIT": "ten"})
    assert err.value.field == "TAXVIEW_HARD_TIME_LIMIT"


def test_a_soft_limit_at_or_above_the_hard_limit_is_refused() -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_SOFT_TIME_LIMIT": "60", "TAXVIEW_HARD_TIME_LIMIT": "60"})
    assert err.value.field == "TAXVIEW_SOFT_TIME_LIMIT"
    # Only the hard limit set, below the default soft one: the message names both variables.
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_HARD_TIME_LIMIT": "10"})
    assert "TAXVIEW_HARD_TIME_LIMIT" in str(err.value) and "soft limit 30s" in str(err.value)


def test_the_visibility_timeout_follows_the_hard_limit_and_an_explicit_one_must_exceed_it() -> None:
    s = Settings.from_env({"TAXVIEW_SOFT_TIME_LIMIT": "500", "TAXVIEW_HARD_TIME_LIMIT": "600"})
    assert s.visibility_timeout_s > 600
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_HARD_TIME_LIMIT": "600", "TAXVIEW_VISIBILITY_TIMEOUT": "300"})
    assert err.value.field == "TAXVIEW_VISIBILITY_TIMEOUT"


def test_a_malformed_flower_basic_auth_is_refused() -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"FLOWER_BASIC_AUTH": "admin"})
    assert err.value.field == "FLOWER_BASIC_AUTH"
    assert Settings.from_env({"FLOWER_BASIC_AUTH": "a:b,c:d"}).flower_basic_auth == "a:b,c:d"


def test_settings_round_trip_through_a_child_process_environment() -> None:
    s = Settings.from_env(
        {
            "TAXVIEW_BROKER_URL": "redis://h:1/0",
            "TAXVIEW_REDIS_URL": "redis://h:1/1",
            "TAXVIEW_MAX_RETRIES": "5",
            "TAXVIEW_CONCURRENCY": "3",
        }
    )
    assert Settings.from_env(s.to_env()) == s


def test_an_unknown_broker_scheme_is_refused() -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_BROKER_URL": "sqs://x", "TAXVIEW_REDIS_URL": "redis://h/1"})
    assert err.value.field == "TAXVIEW_BROKER_URL"
    # ... also with no store given: the scheme is the problem, not the missing store.
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_BROKER_URL": "http://x"})
    assert err.value.field == "TAXVIEW_BROKER_URL"


def test_a_url_whose_password_breaks_it_is_one_line_naming_the_variable_not_the_password() -> None:
    # Deploy audit: a base64 password with '/' crashed preflight and the worker with a traceback
    # that showed its first characters.
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_BROKER_URL": "redis://:s3cr/et@redis:6379/0"})
    assert err.value.field == "TAXVIEW_BROKER_URL" and "s3cr" not in str(err.value)
    assert "percent-encode" in str(err.value)
    ok = Settings.from_env({"TAXVIEW_BROKER_URL": "redis://:s3cr%2Fet@redis:6379/0"})
    assert ok.redis_url == ok.broker_url  # the store defaults to the broker's server


def test_an_empty_visibility_timeout_is_its_default_like_every_other_variable() -> None:
    s = Settings.from_env({"TAXVIEW_HARD_TIME_LIMIT": "100", "TAXVIEW_VISIBILITY_TIMEOUT": ""})
    assert s.visibility_timeout_s == 120  # max(60, hard + 20)


def test_a_unix_socket_broker_is_also_the_default_results_store() -> None:
    s = Settings.from_env({"TAXVIEW_BROKER_URL": "unix:///run/redis.sock"})
    assert s.redis_url == "unix:///run/redis.sock"


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("u:hunter2@127.0.0.1:6391/0", "without a scheme"),  # echoed whole before
        ("amqp://guest:12/hunter2@127.0.0.1:5999//", "percent-encode"),  # read as host:port
        ("redis://default:99/hunter2@127.0.0.1:6392/0", "percent-encode"),
        ("redis://127.0.0.1:6391/abc", "database number"),  # a traceback in kombu later
        ("redis://127.0.0.1:0/0", "port is 0"),  # the client took port 0 for 6379
    ],
)
def test_a_broker_url_that_cannot_be_read_safely_is_refused_without_its_password(
    url: str, text: str
) -> None:
    env = {"TAXVIEW_BROKER_URL": url, "TAXVIEW_REDIS_URL": "redis://127.0.0.1:6391/1"}
    with pytest.raises(InputError) as err:
        Settings.from_env(env)
    assert err.value.field == "TAXVIEW_BROKER_URL" and text in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("raw", ["1_0", "\u0663", "4611686018427387904", "+-5", "--5"])
def test_a_number_setting_is_plain_ascii_digits_within_bounds(raw: str) -> None:
    with pytest.raises(InputError) as err:
        Settings.from_env({"TAXVIEW_RESULTS_TTL": raw})
    assert err.value.field == "TAXVIEW_RESULTS_TTL"


def test_a_non_ascii_flower_password_is_refused() -> None:
    # Flower compares credentials with hmac.compare_digest: every request was a 500.
    with pytest.raises(InputError) as err:
        Settings.from_env({"FLOWER_BASIC_AUTH": "ädmin:tøpsecret"})
    assert err.value.field == "FLOWER_BASIC_AUTH"
