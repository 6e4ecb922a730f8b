"""Settings: the only reader of os.environ. Read once at start-up and validated, so that a bad
value stops the process with a message naming the variable, not a stack trace later."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# The order saga's participants default to the demo participants, as they always have; any
# other participant needs its <NAME>_URL (but for `orchestrator run`, whose demo serves all).
DEFAULT_PARTICIPANTS = ("payment", "inventory", "shipping")
DEFAULT_PARTICIPANTS_URL = "http://127.0.0.1:8001"
DEFAULT_PARTICIPANT_VARS = tuple(name.upper() for name in DEFAULT_PARTICIPANTS)
PER_PARTICIPANT = re.compile(r"([A-Z][A-Z0-9_]*?)_(URL|BULKHEAD_SIZE|RATE_LIMIT)")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the processes need to know about their surroundings."""

    database_url: str
    participant_urls: dict[str, str]  # participant -> base URL, as configured
    step_timeout_s: float = 5.0
    step_max_attempts: int = 5
    compensation_max_attempts: int = 10
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 5.0
    breaker_fail_max: int = 5
    breaker_reset_s: float = 10.0
    bulkhead_size: int = 32
    bulkheads: dict[str, int] = field(default_factory=dict)  # <NAME>_BULKHEAD_SIZE given
    rate_limits: dict[str, float] = field(default_factory=dict)  # <NAME>_RATE_LIMIT given
    api_tokens: tuple[tuple[str, str], ...] = ()  # (name, token)
    operator_tokens: tuple[tuple[str, str], ...] = ()
    allow_anonymous: bool = False
    log_json: bool = True
    shards: int = 16
    definitions_dir: Path | None = None  # None: the bundled definitions
    console_secret: str | None = None  # signs console sessions; None: derived (see console)

    def participant_url(self, name: str) -> str | None:
        """The participant's base URL: its <NAME>_URL, else the demo participants' for the
        order saga's three, else None (not configured)."""
        url = self.participant_urls.get(name)
        if url is None and name in DEFAULT_PARTICIPANTS:
            return DEFAULT_PARTICIPANTS_URL
        return url

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        """The event store's file; the views live beside it in `<name>.views<suffix>`."""
        return Path(self.database_url[len("sqlite:///"):])

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_tokens or self.operator_tokens)

    def redacted_database_url(self) -> str:
        """The database URL fit for a log line: no password."""
        parts = urlsplit(self.database_url)
        if parts.password is None:
            return self.database_url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates the settings from the environment (os.environ by default)."""
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL") or f"sqlite:///{Path('var') / 'orchestrator.sqlite3'}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise SettingsError(
            "DATABASE_URL must be sqlite:///path/file.sqlite3 or postgresql://user:pass@host/db")
    if url.startswith("sqlite:///"):
        _check_sqlite_folder(url)
    urls: dict[str, str] = {}
    bulkheads: dict[str, int] = {}
    rate_limits: dict[str, float] = {}
    for var in sorted(env):
        match = PER_PARTICIPANT.fullmatch(var)
        if match is None or var == "DATABASE_URL" or not env[var]:
            continue
        name, kind = match.group(1).lower(), match.group(2)
        if kind == "URL":
            if var[:-4] in DEFAULT_PARTICIPANT_VARS or env[var].startswith(("http:", "https:")):
                urls[name] = _url(var, env[var])  # other *_URL variables are not ours
        elif kind == "BULKHEAD_SIZE":
            bulkheads[name] = _int(env, var, 32, 1, 4096)
        else:
            rate = _optional_float(env, var)
            if rate is not None:
                rate_limits[name] = rate
    directory = env.get("DEFINITIONS_DIR")
    if directory and not Path(directory).is_dir():
        raise SettingsError(f"DEFINITIONS_DIR: {directory} is not a folder")
    return Settings(
        database_url=url,
        participant_urls=urls,
        step_timeout_s=_float(env, "STEP_TIMEOUT_S", 5.0, 0.01, 600),
        step_max_attempts=_int(env, "STEP_MAX_ATTEMPTS", 5, 1, 1000),
        compensation_max_attempts=_int(env, "COMPENSATION_MAX_ATTEMPTS", 10, 1, 1000),
        backoff_base_s=_float(env, "RETRY_BACKOFF_BASE_S", 0.1, 0.0, 3600),
        backoff_cap_s=_float(env, "RETRY_BACKOFF_CAP_S", 5.0, 0.0, 3600),
        breaker_fail_max=_int(env, "BREAKER_FAIL_MAX", 5, 1, 10_000),
        breaker_reset_s=_float(env, "BREAKER_RESET_S", 10.0, 0.01, 3600),
        bulkhead_size=_int(env, "BULKHEAD_SIZE", 32, 1, 4096),
        bulkheads=bulkheads,
        rate_limits=rate_limits,
        api_tokens=_tokens("API_TOKENS", env.get("API_TOKENS"), "client"),
        operator_tokens=_tokens("OPERATOR_TOKENS", env.get("OPERATOR_TOKENS"), "operator"),
        allow_anonymous=env.get("ALLOW_ANONYMOUS", "") in ("1", "true", "yes"),
        log_json=env.get("LOG_FORMAT", "json") != "text",
        shards=_int(env, "WORKER_SHARDS", 16, 1, 1024),
        definitions_dir=Path(directory) if directory else None,
        console_secret=_secret(env, "CONSOLE_SECRET"),
    )


def _secret(env: Mapping[str, str], var: str) -> str | None:
    value = env.get(var) or None
    if value is not None and len(value) < 32:
        raise SettingsError(f"{var} must be at least 32 characters (it signs sessions)")
    return value


def _url(var: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{var} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _number(env: Mapping[str, str], var: str, default: float, low: float, high: float,
            kind: type) -> float:
    raw = env.get(var)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a {kind.__name__}, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{var} must be between {low} and {high}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], var: str, default: int, low: int, high: int) -> int:
    return int(_number(env, var, default, low, high, int))


def _float(env: Mapping[str, str], var: str, default: float, low: float, high: float) -> float:
    return float(_number(env, var, default, low, high, float))


def _optional_float(env: Mapping[str, str], var: str) -> float | None:
    if not env.get(var):
        return None
    return _float(env, var, 0.0, 0.001, 1_000_000)


MIN_TOKEN_LENGTH = 16
TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _tokens(var: str, raw: str | None, kind: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated tokens, each `name:token` or a bare token (named `<kind>-1`, ...).

    The name is what an operator's retry records as who asked, so it is never derived from
    the secret. `:` is the separator because no base64, base64url or hex token holds one (a
    `=` would split a padded base64 token); a token that holds a `:` needs a name in front.
    A token under MIN_TOKEN_LENGTH characters refuses to start: such a token is a typo or a
    guessable one, never a secret."""
    named = []
    for i, item in enumerate((t.strip() for t in (raw or "").split(",") if t.strip()), 1):
        name, sep, token = item.partition(":")
        if not sep:
            name, token = f"{kind}-{i}", item
        elif not TOKEN_NAME.fullmatch(name):
            raise SettingsError(
                f"{var}: token {i} has a name that is not 1 to 64 of A-Z a-z 0-9 _ . - "
                "(the syntax is name:token or a bare token, comma-separated)")
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise SettingsError(
                f"{var}: token {i} ({name}) must be at least {MIN_TOKEN_LENGTH} characters "
                "with no spaces (the syntax is name:token or a bare token, comma-separated)")
        named.append((name, token))
    return tuple(named)


def _check_sqlite_folder(url: str) -> None:
    """The SQLite file must be creatable where DATABASE_URL points: say so now, naming the
    variable, rather than fail with a traceback on the first write."""
    path = Path(url[len("sqlite:///"):])
    if path.exists():
        if not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
            raise SettingsError(f"DATABASE_URL: {path} is not a readable and writable file")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise SettingsError(
            f"DATABASE_URL: cannot create {path}: the folder {folder} is not writable")
