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
