"""Configuration: `SALESBOT_*` environment variables or a TOML file, validated once at start.

A wrong setting stops the process with a message that names the variable, instead of surfacing as a
signature failure at 9 a.m. on Monday. `masked()` is what `salesbot config check` prints: secrets
never leave the process in clear.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config_fields import Check, Invalid, Location, Problem, build, validate
from bot.masking import MASK, mask_secret
from storage.engine import DEFAULT_DATABASE_URL, DatabaseURLError, async_url

ENV_PREFIX = "SALESBOT_"
SECRET_MARKERS = ("secret", "token", "aes_key", "password")


class ConfigError(ValueError):
    """Raised with a message that names the offending setting (as its environment variable)."""


def _aes_key(value: str | None, name: str = "") -> str | None:
    if value is None or value == "":
        return None
    if len(value) != 43 or not value.isalnum():
        raise ValueError(f"{name} 必须是 43 位字母数字（EncodingAESKey），当前长度 {len(value)}".lstrip())
    return value


CORPS_PATH = "wecom.corps"
_CORP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_corp_id(value: str) -> str:
    # It becomes a URL path segment and the organisation key; WeCom CorpIDs are letters and digits.
    if not _CORP_ID.match(value):
        raise ValueError(f"CorpID 只能包含字母、数字、_ 和 -（1–64 位），当前 {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class WeComCorp:
    """One extra WeCom corp (`[[wecom.corps]]` in the TOML file); the env vars keep defining the default corp.

    A corp is its own organisation: its own callback URLs (`/wecom/aibot/<corp_id>`, `/wecom/app/<corp_id>`),
    envelopes, access token and agent id. Field types are enforced by `bot.config_fields.validate`.
    """

    _checks: ClassVar[Mapping[str, Check]] = {
        "corp_id": _check_corp_id,
        "aibot_aes_key": _aes_key,  # the location already names the key
        "app_aes_key": _aes_key,
    }

    corp_id: str
    aibot_token: str | None = None
    aibot_aes_key: str | None = None
    app_token: str | None = None
    app_aes_key: str | None = None
    app_secret: str | None = None
    agent_id: int | None = None
    # Where this corp's API lives; defaults to SALESBOT_WECOM_API_BASE (a 私有化 deployment has its own host).
    api_base: str | None = None
    # The AI bot over a long connection instead of HTTP callbacks (no public URL): its Bot ID and Secret.
    aibot_mode: Literal["http", "websocket"] = "http"
    aibot_bot_id: str | None = None
    aibot_secret: str | None = None
    aibot_ws_url: str | None = None  # defaults to SALESBOT_WECOM_AIBOT_WS_URL

    def __post_init__(self) -> None:
        validate(self)

    def _problem(self) -> Problem | None:
        for a, b in (("aibot_token", "aibot_aes_key"), ("app_token", "app_aes_key")):
            if bool(getattr(self, a)) != bool(getattr(self, b)):
                missing, present = (b, a) if getattr(self, a) else (a, b)
                return (missing,), f"缺少（与 {present} 配套）"
        if self.app_secret and self.agent_id is None:
            return ("agent_id",), "缺少（发送应用消息需要，与 app_secret 配套）"
        if self.aibot_mode == "websocket" and not (self.aibot_bot_id and self.aibot_secret):
            missing = "aibot_secret" if self.aibot_bot_id else "aibot_bot_id"
            return (missing,), "缺少（长连接模式需要 aibot_bot_id 和 aibot_secret）"
        if not (self.aibot_token or self.app_token or self.app_secret or self.aibot_mode == "websocket"):
            return ("aibot_token",), (
                "至少需要配置 aibot_token/aibot_aes_key、app_token/app_aes_key、app_secret 或长连接模式之一"
            )
        return None


def _split_admins(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.replace("，", ",").split(",") if v.strip())
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_retention(value: int) -> int:
    if value < 0:
        raise ValueError(f"必须是 0（不清理）或正整数（天数），当前 {value}")
    return value


def _check_timeout(value: int) -> int:
    if not 1 <= value <= 300:
        raise ValueError(f"必须是 1–300 之间的秒数，当前 {value}")
    return value


def _check_sign_window(value: int) -> int:
    # Seen signatures are forgotten by the daily housekeeping (retention of at least one day): a window
    # longer than a day would let a pruned (timestamp, sign) pair be replayed.
    if not 60 <= value <= 86400:
        raise ValueError(f"必须是 60–86400 之间的秒数（钉钉文档为 3600），当前 {value}")
    return value


def _check_url(value: str) -> str:
    try:
        async_url(value)
    except DatabaseURLError as err:
        raise ValueError(str(err)) from None
    return value


def _check_public_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise ValueError(f"必须是 http(s):// 开头的网址，例如 https://bot.example.com，当前 {value!r}")
    return value.rstrip("/")


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"未知时区 {value!r}，示例：Asia/Shanghai") from None
    return value


def _env_aes_key(field: str) -> Check:
    return functools.partial(_aes_key, name=ENV_PREFIX + field.upper())


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, typed; constructing one (directly or via `load_settings`) validates it.

    Field types are enforced by `bot.config_fields.validate`; `_checks` and `_problem` add what a type cannot say.
    """

    _parsers: ClassVar[Mapping[str, Check]] = {
        "admins": _split_admins,  # "a, b，c" from SALESBOT_ADMINS
        "log_level": _upper,  # "warning" reads as WARNING, as the logging module spells it
        "log_format": _lower,
    }
    _checks: ClassVar[Mapping[str, Check]] = {
        "retention_days": _check_retention,
        "database_url": _check_url,
        "timezone": _check_tz,
        "public_url": _check_public_url,
        "header_timeout_s": _check_timeout,
        "body_timeout_s": _check_timeout,
        "dingtalk_sign_window_s": _check_sign_window,
        **{f: _env_aes_key(f) for f in ("wecom_aibot_aes_key", "wecom_app_aes_key", "dingtalk_event_aes_key")},
    }

    database_url: str = DEFAULT_DATABASE_URL
    admins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # `json`: one JSON object per log line, with the message's context (bot.logs); `text`: classic lines.
    log_format: Literal["text", "json"] = "text"
    timezone: str = "Asia/Shanghai"
    # Search only this directory for the charts' CJK font (default: fontconfig, then the usual font paths).
    chart_font_dir: str | None = None
    reply_budget_ms: int = 1500
    # Days to keep finished delivery bookkeeping (inbound dedup rows, sent/failed outbox rows); 0 keeps all.
    retention_days: int = 30
    # A connection that has not delivered its request head this many seconds after connecting (or after
    # its previous answer) is closed; a request body must arrive within body_timeout_s (slow clients).
    header_timeout_s: int = 10
    body_timeout_s: int = 10
    # Where people reach this service from outside (the web board's links: `<public_url>/board/<token>`;
    # the retro chart's picture on DingTalk: `<public_url>/charts/<id>.png`), and the board links' HMAC
    # secret (unset: one is generated once and kept in the database).
    public_url: str | None = None
    board_secret: str | None = None

    wecom_corp_id: str | None = None
    wecom_aibot_token: str | None = None
    wecom_aibot_aes_key: str | None = None
    wecom_aibot_mode: Literal["http", "websocket"] = "http"
    wecom_aibot_bot_id: str | None = None
    wecom_aibot_secret: str | None = None
    wecom_aibot_ws_url: str = "wss://openws.work.weixin.qq.com"
    wecom_app_token: str | None = None
    wecom_app_aes_key: str | None = None
    wecom_app_secret: str | None = None
    wecom_agent_id: int | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # Further corps, from the TOML file only (`[[wecom.corps]]`); the SALESBOT_WECOM_* values above are
    # the default corp, so the common one-corp case needs no file.
    wecom_corps: tuple[WeComCorp, ...] = ()

    dingtalk_app_key: str | None = None
    dingtalk_app_secret: str | None = None
    dingtalk_robot_code: str | None = None
    dingtalk_agent_id: int | None = None
    dingtalk_event_token: str | None = None
    dingtalk_event_aes_key: str | None = None
    dingtalk_mode: Literal["http", "stream"] = "http"
    # How far a robot callback's or event's timestamp may be from our clock (DingTalk documents 1 hour);
    # a (timestamp, sign) pair seen within it is refused with another msgId (replay).
    dingtalk_sign_window_s: int = 3600
    dingtalk_oapi_base: str = "https://oapi.dingtalk.com"
    dingtalk_api_base: str = "https://api.dingtalk.com"

    def __post_init__(self) -> None:
        validate(self)

    def _problem(self) -> Problem | None:
        pairs = [
            ("wecom_aibot_token", "wecom_aibot_aes_key"),
            ("wecom_app_token", "wecom_app_aes_key"),
            ("dingtalk_event_token", "dingtalk_event_aes_key"),
            ("dingtalk_app_key", "dingtalk_app_secret"),
        ]
        for a, b in pairs:
            if bool(getattr(self, a)) != bool(getattr(self, b)):
                missing = b if getattr(self, a) else a
                partner = (a if missing == b else b).upper()
                return (), f"缺少 {ENV_PREFIX}{missing.upper()}（与 {ENV_PREFIX}{partner} 配套）"
        if self.wecom_app_token and not self.wecom_corp_id:
            return (), f"缺少 {ENV_PREFIX}WECOM_CORP_ID（自建应用回调需要 CorpID 校验）"
        if self.wecom_app_secret and (not self.wecom_corp_id or self.wecom_agent_id is None):
            return (), f"缺少 {ENV_PREFIX}WECOM_CORP_ID 或 {ENV_PREFIX}WECOM_AGENT_ID（发送应用消息需要）"
        if self.wecom_aibot_mode == "websocket" and not (self.wecom_aibot_bot_id and self.wecom_aibot_secret):
            return (), f"长连接模式需要 {ENV_PREFIX}WECOM_AIBOT_BOT_ID 和 {ENV_PREFIX}WECOM_AIBOT_SECRET"
        if problem := self._duplicate_corp():
            return problem
        if self.dingtalk_mode == "stream" and not self.dingtalk_app_key:
            return (), f"Stream 模式需要 {ENV_PREFIX}DINGTALK_APP_KEY 和 {ENV_PREFIX}DINGTALK_APP_SECRET"
        return None

    def _duplicate_corp(self) -> Problem | None:
        seen: set[str] = {self.wecom_corp_id} if self.wecom_corp_id else set()
        for index, corp in enumerate(self.wecom_corps):
            if corp.corp_id in seen:
                where = f"{ENV_PREFIX}WECOM_CORP_ID" if corp.corp_id == self.wecom_corp_id else "前面的条目"
                return ("wecom_corps", index, "corp_id"), f"{corp.corp_id} 重复（与 {where} 相同）"
            seen.add(corp.corp_id)
        return None

    @property
    def wecom_enabled(self) -> bool:
        return bool(
            self.wecom_aibot_token or self.wecom_app_token or self.wecom_aibot_mode == "websocket" or self.wecom_corps
        )

    @property
    def dingtalk_enabled(self) -> bool:
        return bool(self.dingtalk_app_key)

    def masked(self) -> dict[str, Any]:
        """The effective configuration with every secret replaced, for printing."""
        out: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self).items():
            if name == "wecom_corps":
                out[name] = [_mask_secrets(corp) for corp in value]
            elif name == "database_url":
                out[name] = _mask_url(value)
            else:
                out.update(_mask_secrets({name: value}))
        return out


def _mask_secrets(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: mask_secret(str(value), keep=0) if value and any(marker in name for marker in SECRET_MARKERS) else value
        for name, value in values.items()
    }


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return MASK


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"找不到配置文件 {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"配置文件 {path} 格式错误：{err}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # [wecom] corp_id = … → wecom_corp_id
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}".lower()] = subvalue
        else:
            flat[key.lower()] = value
    return flat


def _error_location(loc: Location, message: str) -> str:
    """`SALESBOT_WECOM_AIBOT_AES_KEY: …` for flat settings, `wecom.corps[1].aibot_aes_key: …` for a corp entry."""
    if loc and loc[0] == "wecom_corps":
        if len(loc) == 1:
            return f"{CORPS_PATH}: {message}"
        entry = f"{CORPS_PATH}[{loc[1]}]"
        if len(loc) > 2:
            return f"{entry}.{'.'.join(str(p) for p in loc[2:])}: {message}"
        return f"{entry}: {message}"
    field = ".".join(str(p) for p in loc)
    return f"{ENV_PREFIX}{field.upper()}: {message}" if field else message


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None, **overrides: Any
) -> Settings:
    """Environment wins over the TOML file; explicit overrides (command-line flags) win over both."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = env[ENV_PREFIX + "CONFIG"]
    if config_file is not None:
        values.update(_from_toml(Path(config_file)))
    # A list of corps only fits in the TOML file.
    known = {f.name for f in dataclasses.fields(Settings)} - {"wecom_corps"}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in known and value != "":
            values[key[len(ENV_PREFIX) :].lower()] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return build(Settings, values)
    except Invalid as err:
        problems = [_error_location(loc, message) for loc, message in err.problems]
        raise ConfigError("配置错误：\n" + "\n".join(problems)) from None
