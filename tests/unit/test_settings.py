"""Settings refuse what would hurt later: ambiguous or guessable tokens, an unwritable store."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from infrastructure.settings import SettingsError, load

PADDED = "c2VjcmV0b3BzdG9rZW4xMg=="  # a plain base64 token with padding


def test_a_padded_base64_token_is_one_token_named_by_position() -> None:
    settings = load({"OPERATOR_TOKENS": PADDED})
    assert settings.operator_tokens == (("operator-1", PADDED),)


def test_names_come_before_a_colon_and_tokens_may_hold_one() -> None:
    settings = load({"API_TOKENS": f"shop:{PADDED}, night-batch:tok:with:colons-0123"})
    assert settings.api_tokens == (("shop", PADDED), ("night-batch", "tok:with:colons-0123"))


@pytest.mark.parametrize("raw", ["=", "a", "secret", "name:", "name:=", "name:short",
                                 f"bad name:{PADDED}", f":{PADDED}", "with space 0123456789"])
def test_empty_short_or_ambiguous_tokens_refuse_to_start(raw: str) -> None:
    with pytest.raises(SettingsError, match="OPERATOR_TOKENS"):
        load({"OPERATOR_TOKENS": raw})


def test_no_token_secret_reaches_the_error_message() -> None:
    with pytest.raises(SettingsError) as refused:
        load({"API_TOKENS": "shop:tooshort"})
    assert "tooshort" not in str(refused.value)


@pytest.mark.skipif(os.geteuid() == 0 and not os.environ.get("CI_CAN_DROP"),
                    reason="root writes anywhere; checked with a file in the way instead")
def test_a_read_only_folder_is_named_with_the_variable(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SettingsError, match="DATABASE_URL"):
            load({"DATABASE_URL": f"sqlite:///{folder}/sub/o.sqlite3"})
    finally:
        folder.chmod(0o700)


def test_a_store_path_that_cannot_be_a_file_is_named_with_the_variable(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load({"DATABASE_URL": f"sqlite:///{tmp_path}/taken/o.sqlite3"})
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load({"DATABASE_URL": f"sqlite:///{tmp_path}/dir.sqlite3"})


def test_a_store_that_cannot_be_created_is_named_with_the_variable(tmp_path: Path) -> None:
    """Even where permissions say yes (root), a folder that cannot hold the file is named."""
    from infrastructure.bootstrap import bootstrap

    with pytest.raises(SettingsError, match="DATABASE_URL"):
        bootstrap(load({"DATABASE_URL": "sqlite:////proc/orchestrator-test/o.sqlite3"}))


# --- participants: URLs, bulkheads, rate limits -------------------------------------------------


def test_any_participant_takes_its_url_from_name_url() -> None:
    settings = load({"FLIGHTS_URL": "http://flights.internal:8080/", "CAR_HIRE_URL":
                     "https://cars.example/api", "PAYMENT_URL": "http://pay:9000"})

    assert settings.participant_url("flights") == "http://flights.internal:8080"
    assert settings.participant_url("car_hire") == "https://cars.example/api"
    assert settings.participant_url("payment") == "http://pay:9000"
    assert settings.participant_url("hotels") is None  # not configured: its calls wait
    # the order saga's three default to the demo participants, as they always have
    assert settings.participant_url("inventory") == "http://127.0.0.1:8001"


def test_other_url_variables_that_are_not_http_are_not_participants() -> None:
    settings = load({"TEST_DATABASE_URL": "postgresql://root@127.0.0.1:5432/postgres",
                     "REDIS_URL": "redis://cache:6379/0", "DOCS_URL": "",
                     "DATABASE_URL": "postgresql://u:p@db/orch"})

    assert settings.participant_urls == {}
    assert settings.participant_url("test_database") is None
    assert settings.participant_url("database") is None


@pytest.mark.parametrize("value", ["ftp://pay.internal", "pay.internal:8080", "http://",
                                   "postgresql://pay/db", "not a url"])
def test_a_malformed_payment_url_refuses_to_start_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="PAYMENT_URL") as refused:
        load({"PAYMENT_URL": value})
    assert "http(s)" in str(refused.value)


def test_an_http_value_without_a_host_refuses_to_start_for_any_participant() -> None:
    with pytest.raises(SettingsError, match="FLIGHTS_URL"):
        load({"FLIGHTS_URL": "http://"})


def test_bulkheads_and_rate_limits_per_participant() -> None:
    settings = load({"BULKHEAD_SIZE": "16", "FLIGHTS_BULKHEAD_SIZE": "4",
                     "SHIPPING_BULKHEAD_SIZE": "2", "FLIGHTS_RATE_LIMIT": "2.5",
                     "PAYMENT_RATE_LIMIT": "50", "HOTELS_RATE_LIMIT": ""})

    assert settings.bulkhead_size == 16
    assert settings.bulkheads == {"flights": 4, "shipping": 2}
    assert settings.rate_limits == {"flights": 2.5, "payment": 50.0}  # empty: not given


def test_the_defaults_leave_the_limits_to_definitions_and_bulkhead_size() -> None:
    settings = load({})
    assert (settings.bulkhead_size, settings.bulkheads, settings.rate_limits) == (32, {}, {})
    assert settings.definitions_dir is None  # the bundled definitions


@pytest.mark.parametrize(("var", "value"), [
    ("FLIGHTS_BULKHEAD_SIZE", "0"), ("FLIGHTS_BULKHEAD_SIZE", "many"),
    ("FLIGHTS_BULKHEAD_SIZE", "2.5"), ("BULKHEAD_SIZE", "0"),
    ("PAYMENT_RATE_LIMIT", "0"), ("PAYMENT_RATE_LIMIT", "-1"), ("PAYMENT_RATE_LIMIT", "fast"),
])
def test_a_bad_limit_refuses_to_start_naming_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        load({var: value})


def test_definitions_dir_must_be_a_folder(tmp_path: Path) -> None:
    assert load({"DEFINITIONS_DIR": str(tmp_path)}).definitions_dir == tmp_path
    (tmp_path / "order.yaml").write_text("name: order\n")
    for not_a_folder in (tmp_path / "order.yaml", tmp_path / "missing"):
        with pytest.raises(SettingsError, match="DEFINITIONS_DIR"):
            load({"DEFINITIONS_DIR": str(not_a_folder)})


# --- precedence: a setting, then what a definition asks for, then BULKHEAD_SIZE -------------


ASKING = """
name: booking
description: One call to a participant whose definition asks for limits.
key: bookingId
input: {type: object}
participants:
  rooms: {bulkhead: 3, rate_limit: 7}
  desk: {}
steps:
  - name: book
    participant: rooms
    call: {path: /bookings, body: {id: "${key}"}}
  - name: notify
    participant: desk
    call: {path: /notes, body: {id: "${key}"}}
"""


@pytest.mark.parametrize(("env", "rooms", "desk"), [
    ({}, (3, 7.0), (32, None)),  # what the definition asks for, else BULKHEAD_SIZE
    ({"BULKHEAD_SIZE": "9"}, (3, 7.0), (9, None)),
    ({"ROOMS_BULKHEAD_SIZE": "5", "ROOMS_RATE_LIMIT": "1.5"}, (5, 1.5), (32, None)),
    ({"DESK_BULKHEAD_SIZE": "2", "DESK_RATE_LIMIT": "4"}, (3, 7.0), (2, 4.0)),
])
def test_a_setting_beats_the_definition_which_beats_bulkhead_size(
        tmp_path: Path, env: dict[str, str], rooms: tuple[int, float | None],
        desk: tuple[int, float | None]) -> None:
    from infrastructure.bootstrap import bootstrap

    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "booking.yaml").write_text(ASKING)
    system = bootstrap(load({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3",
                             "DEFINITIONS_DIR": str(folder), **env}))
    try:
        assert system.definitions.names() == ["booking"]  # only the folder's, not the bundled
        assert (system.bulkhead("rooms"), system.rate_limit("rooms")) == rooms
        assert (system.bulkhead("desk"), system.rate_limit("desk")) == desk
        assert (system.bulkhead("elsewhere"), system.rate_limit("elsewhere")) == (
            int(env.get("BULKHEAD_SIZE", 32)), None)
    finally:
        system.stop()
