"""Logging: secrets and account numbers never reach a log file or the console."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tradepipe.logs import (
    FILE_ONLY,
    MASK,
    ROOT,
    RedactionFilter,
    setup_logging,
    shutdown_logging,
)

SECRET = "s3cr3t-Value-9f8e7d"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging changes the ``tradepipe`` logger; put it back after each test."""
    logger = logging.getLogger(ROOT)
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    yield
    shutdown_logging()
    logger.setLevel(level)
    logger.propagate = propagate
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger(f"{ROOT}.test_logs")


def log_text(directory: Path) -> str:
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()
    return (directory / "tradepipe.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("message", "hidden", "kept"),
    [
        (f"connected with {SECRET} as key", [SECRET], ["connected with", "as key"]),
        (
            "GET /portfolio headers: Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.abc.def",
            ["eyJhbGciOiJSUzI1NiJ9", "abc.def"],
            ["GET /portfolio", "Authorization: "],
        ),
        (
            "POST /oauth/live_session_token?oauth_token=tok0123456789"
            "&oauth_signature=c2lnbmF0dXJlMTIz&oauth_nonce=n1",
            ["tok0123456789", "c2lnbmF0dXJlMTIz"],
            ["oauth_token=", "oauth_signature=", "/oauth/live_session_token"],
        ),
        ("request Cookie: api=0123abcdef4567; x-sess=zz", ["0123abcdef4567"], ["Cookie: "]),
        (
            'token response {"access_token": "tok-abcdef-123456", "expires_in": 86400}',
            ["tok-abcdef-123456"],
            ['"access_token": "', '"expires_in": 86400'],
        ),
        ("login user=bob password=hunter2hunter2 ok", ["hunter2hunter2"], ["user=bob", " ok"]),
    ],
)
def test_secrets_are_masked_in_the_log_file(
    tmp_path: Path, log: logging.Logger, message: str, hidden: list[str], kept: list[str]
) -> None:
    setup_logging(directory=tmp_path, secrets=[SECRET])

    log.info(message)

    text = log_text(tmp_path)
    for value in hidden:
        assert value not in text
    assert MASK in text
    for fragment in kept:
        assert fragment in text


def test_ibkr_account_ids_keep_their_last_four_digits(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path)

    log.info("positions of U1234567 and DU7654321 reconciled")

    text = log_text(tmp_path)
    assert "U1234567" not in text and "7654321" not in text
    assert "positions of U***4567 and DU***4321 reconciled" in text


def test_secret_in_a_log_argument_is_masked(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path, secrets=[SECRET])

    log.info("session started with %s for %s", SECRET, "DU7654321")

    text = log_text(tmp_path)
    assert SECRET not in text
    assert f"session started with {MASK} for DU***4321" in text


def test_secret_in_an_exception_traceback_is_masked(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path, secrets=[SECRET])

    try:
        raise RuntimeError(f"login refused for key {SECRET} on U1234567")
    except RuntimeError:
        log.exception("authentication failed")

    text = log_text(tmp_path)
    assert SECRET not in text
    assert "U1234567" not in text
    assert "authentication failed" in text
    assert "Traceback (most recent call last)" in text
    assert f"RuntimeError: login refused for key {MASK} on U***4567" in text


def test_console_output_is_masked_too(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(directory=None, console_level="WARNING", secrets=[SECRET])

    log.warning("retrying with %s", SECRET)
    log.info("not shown on the console")

    err = capsys.readouterr().err
    assert err == f"WARNING: retrying with {MASK}\n"


def test_a_file_only_record_skips_the_console(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # The error raised with it says it on the console; the file keeps the record.
    setup_logging(directory=tmp_path, console_level="WARNING")
    log.warning("gateway unreachable", extra=FILE_ONLY)
    log.warning("said once")
    assert capsys.readouterr().err == "WARNING: said once\n"
    text = (tmp_path / "tradepipe.log").read_text()
    assert "WARNING" in text and "gateway unreachable" in text and "said once" in text


def test_secrets_shorter_than_four_characters_are_not_masked() -> None:
    # Masking "ab" would mangle unrelated text all over the log.
    redaction = RedactionFilter(["ab", SECRET])

    assert redaction.redact(f"abc {SECRET}") == f"abc {MASK}"


def test_secret_containing_another_is_masked_whole() -> None:
    redaction = RedactionFilter(["abcd", "abcd-efgh-ijkl"])

    assert redaction.redact("x abcd-efgh-ijkl y") == f"x {MASK} y"


def test_plain_messages_pass_unchanged(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path, secrets=[SECRET])
    message = "order c-17 filled: BUY 100 AAPL @ 187.25, 50% of the day's volume"

    log.info(message)
    log.info("progress %d%%", 50)

    lines = log_text(tmp_path).splitlines()
    assert lines[0].endswith(f" INFO    {ROOT}.test_logs: {message}")
    assert lines[1].endswith(": progress 50%")


def test_log_file_is_readable_by_its_owner_only(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path / "logs")
    log.info("hello")

    mode = stat.S_IMODE((tmp_path / "logs" / "tradepipe.log").stat().st_mode)
    assert mode == 0o600


def test_file_level_filters_records(tmp_path: Path, log: logging.Logger) -> None:
    setup_logging(directory=tmp_path, level="WARNING")

    log.info("quiet")
    log.warning("loud")

    text = log_text(tmp_path)
    assert "quiet" not in text
    assert "loud" in text


def test_calling_setup_twice_replaces_the_handlers(tmp_path: Path, log: logging.Logger) -> None:
    logger = logging.getLogger(ROOT)
    setup_logging(directory=tmp_path, secrets=["first-secret-1111"])
    setup_logging(directory=tmp_path, secrets=["second-secret-2222"])

    log.info("once second-secret-2222")

    ours = [h for h in logger.handlers if getattr(h, "_tradepipe", False)]
    assert len(ours) == 2  # one console, one file
    text = log_text(tmp_path)
    assert [line for line in text.splitlines() if "once" in line] == [
        line for line in text.splitlines() if line.endswith(f"once {MASK}")
    ]
    assert text.count("once") == 1
    assert "second-secret-2222" not in text


def test_setup_leaves_foreign_handlers_alone(tmp_path: Path) -> None:
    logger = logging.getLogger(ROOT)
    foreign = logging.NullHandler()
    logger.addHandler(foreign)
    try:
        setup_logging(directory=tmp_path)
        setup_logging(directory=tmp_path)
        assert foreign in logger.handlers
    finally:
        logger.removeHandler(foreign)


def test_shutdown_removes_the_handlers(tmp_path: Path) -> None:
    setup_logging(directory=tmp_path)

    shutdown_logging()

    assert not [h for h in logging.getLogger(ROOT).handlers if getattr(h, "_tradepipe", False)]


def test_every_ibkr_account_prefix_is_masked() -> None:
    from tradepipe.logs import redact_accounts

    text = "DU1234567 DUE1234567 DF7654321 U1234567 F1234567 I1234567, order 12345678"
    assert redact_accounts(text) == (
        "DU***4567 DUE***4567 DF***4321 U***4567 F***4567 I***4567, order 12345678"
    )
