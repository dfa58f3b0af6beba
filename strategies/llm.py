"""``llm``: ask an OpenAI-compatible chat-completions endpoint for decisions.

On a bar of a symbol it is asked about, the source sends the bar, the recent
closes and the account to ``{base_url}/chat/completions`` (OpenAI, or a local
server: llama.cpp, Ollama, vLLM, LM Studio …) and reads the answer as a
decision document (see :mod:`tradepipe.decision_schema`). The decision keeps
the hash of the prompt (``inputs_hash``) and the answer as given (``raw``).

With ``every`` (``5m``, ``1h``) it is asked on a schedule instead, as a
trading bot asks its model: about each of its symbols once per ``every``
while the market is open — in a live run between bars too (one question per
tick, so the loop is never held by more than one), in a replay at the bars
that fall due. The question then carries the market around the symbol: the
recent bars (OHLCV), the latest prices and positions of all its symbols, cash
and equity.

Failures never stop the run: a timeout, a refused key (401/403), rate limiting
(429: no more questions until the server's ``Retry-After``), a server error or
an unreachable server is logged and that bar gets no decision; an answer that
is not a valid decision is recorded as rejected, with the answer.

An answer with an options strategy on the symbol is converted at once, at the
bar asked about: its legs come from the broker's chain as it is then (see
:func:`tradepipe.strategies.external.read_options`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import string
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator
from tradepipe import Bar, ComponentSettings, StrategyContext, hookimpl
from tradepipe.decision_schema import DecisionDocument, read_decision
from tradepipe.decisions import RAW_MAX, Decision, RejectedDecision
from tradepipe.settings import parse_duration
from tradepipe.strategies.external import read_options

if TYPE_CHECKING:
    import httpx
from tradepipe.strategy import Strategy

log = logging.getLogger(__name__)

DEFAULT_PROMPT = """\
You are a careful trading assistant. You are given recent market data for one \
symbol, $symbol, and the account as JSON. Answer with exactly one JSON object, \
a trading decision with these keys:
  "symbol": "$symbol",
  "action": "buy", "sell", "close" (flatten the position) or "hold",
  "confidence": a number from 0 to 100,
  "stop_loss": the protective stop price (required for buy and sell),
  "rationale": one or two sentences.
Optional keys: "take_profit" (price), "quantity" (shares), "order_type" \
("market" or "limit" with "limit_price"), "expires_at" (ISO 8601 with a UTC offset).
Answer "hold" when there is no clear trade. No other keys, no text outside the object."""

#: Keys of an answer the source sets itself: a model cannot know them.
_OURS = ("id", "source", "created_at", "inputs_hash")


class LlmSource(Strategy):
    """Decisions from a chat-completions endpoint, one question per bar of a symbol."""

    name = "llm"
    description = "asks an OpenAI-compatible chat-completions endpoint for decisions"

    class Settings(ComponentSettings):
        #: The API root; ``/chat/completions`` is appended.
        base_url: str = "http://localhost:11434/v1"
        model: str = Field(min_length=1, max_length=100)
        #: Sent as a bearer token; keep it in ``.secrets.toml`` or the environment.
        api_key: SecretStr | None = None
        timeout_seconds: float = Field(default=30, gt=0, le=600)
        temperature: float = Field(default=0, ge=0, le=2)
        max_tokens: int | None = Field(default=None, ge=1)
        #: Symbols to ask about (empty: every symbol of the feed).
        symbols: list[str] = Field(default_factory=list)
        #: Ask on every n-th bar of a symbol.
        every_bars: int = Field(default=1, ge=1)
        #: Closes of earlier bars included in the question.
        history_bars: int = Field(default=20, ge=0, le=1000)
        #: ``$symbol`` and ``$schema`` (the decision document's JSON schema) are filled in.
        system_prompt: str = Field(default=DEFAULT_PROMPT, min_length=1)
        #: Ask for a JSON object (``response_format``); turned off for the run if
        #: the server refuses it.
        json_mode: bool = True
        #: After HTTP 429 without ``Retry-After``: seconds without questions.
        pause_seconds: float = Field(default=60, ge=0)
        #: Ask on a schedule (``5m``, ``1h``; at least ``10s``): about each symbol
        #: once per interval while the market is open, with market context.
        #: Empty: on every ``every_bars``-th bar of a symbol.
        every: str = ""

        @field_validator("every")
        @classmethod
        def _every(cls, value: str) -> str:
            if value.strip() and parse_duration(value) < dt.timedelta(seconds=10):
                raise ValueError(f"{value!r} is too often; ask at most every 10s")
            return value.strip()

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        self._only = {x.upper() for x in s.symbols}
        self._closes: dict[str, deque[float]] = {}
        self._count: dict[str, int] = {}
        self._json_mode = s.json_mode
        self._paused_until = 0.0
        self._monotonic = time.monotonic
        self._template = string.Template(s.system_prompt)
        self._schema = json.dumps(DecisionDocument.model_json_schema(), separators=(",", ":"))
        self.url = s.base_url.rstrip("/") + "/chat/completions"
        self.source = f"llm:{s.model}"[:128]
        self._every = parse_duration(s.every) if s.every else None
        self._bars: dict[str, deque[Bar]] = {}
        self._next_ask: dict[str, dt.datetime] = {}
        self._turn = 0

    def decide(self, bar: Bar, ctx: StrategyContext) -> Decision | RejectedDecision | None:
        symbol = bar.symbol
        if self._only and symbol not in self._only:
            return None
        if self._every is not None:
            self._keep(bar)
            now = ctx.now()
            if not ctx.market_open() or not self._due(symbol, now):
                return None
            return self._ask_about(symbol, ctx, now)
        closes = self._closes.setdefault(symbol, deque(maxlen=self.settings.history_bars))
        seen = self._count.get(symbol, 0)
        self._count[symbol] = seen + 1
        try:
            if seen % self.settings.every_bars:
                return None
            if self._monotonic() < self._paused_until:
                log.info("llm: not asking about %s: paused after HTTP 429", symbol)
                return None
            messages = self._messages(bar, ctx, list(closes))
            return self._ask(bar, messages, ctx)
        finally:
            closes.append(bar.close)

    def on_tick(self, now: dt.datetime, ctx: StrategyContext) -> Decision | RejectedDecision | None:
        """A live run's tick: ask about the next symbol that is due, if the market is open."""
        if self._every is None or not ctx.market_open():
            return None
        due = [s for s in self._bars if self._due(s, now)]
        if not due:
            return None
        symbol = due[self._turn % len(due)]
        self._turn += 1
        return self._ask_about(symbol, ctx, now)

    def warm_up(self, bars: Sequence[Bar], ctx: StrategyContext) -> None:
        for bar in bars:
            if self._only and bar.symbol not in self._only:
                continue
            closes = self._closes.setdefault(bar.symbol, deque(maxlen=self.settings.history_bars))
            closes.append(bar.close)
            self._keep(bar)

    def _keep(self, bar: Bar) -> None:
        kept = self._bars.setdefault(bar.symbol, deque(maxlen=max(1, self.settings.history_bars)))
        kept.append(bar)

    def _due(self, symbol: str, now: dt.datetime) -> bool:
        if self._monotonic() < self._paused_until:
            return False
        return now >= self._next_ask.get(symbol, now)

    def _ask_about(
        self, symbol: str, ctx: StrategyContext, now: dt.datetime
    ) -> Decision | RejectedDecision | None:
        assert self._every is not None
        self._next_ask[symbol] = now + self._every
        bar = self._bars[symbol][-1]
        return self._ask(bar, self._context_messages(symbol, ctx, now), ctx)

    # -- the question ------------------------------------------------------------

    def _context_messages(
        self, symbol: str, ctx: StrategyContext, now: dt.datetime
    ) -> list[dict[str, str]]:
        """A scheduled question: the symbol's recent bars and the market of all its symbols."""
        system = self._template.safe_substitute(symbol=symbol, schema=self._schema)
        mine = sorted(self._only or self._bars)
        prices = {s: ctx.last_price(s) for s in mine}
        facts = {
            "symbol": symbol,
            "time": now.isoformat(),
            "market_open": ctx.market_open(),
            "recent_bars": [
                {
                    "time": b.ts.isoformat(),
                    "open": b.open,
                    "high": b.high,
                    "low": b.low,
                    "close": b.close,
                    "volume": b.volume,
                }
                for b in self._bars.get(symbol, ())
            ],
            "quotes": {s: str(p) for s, p in prices.items() if p is not None},
            "positions": {s: str(ctx.position(s)) for s in mine},
            "cash": str(ctx.cash()),
            "equity": str(ctx.equity()),
        }
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": json.dumps(facts)},
        ]

    def _messages(
        self, bar: Bar, ctx: StrategyContext, closes: list[float]
    ) -> list[dict[str, str]]:
        system = self._template.safe_substitute(symbol=bar.symbol, schema=self._schema)
        facts = {
            "symbol": bar.symbol,
            "time": bar.ts.isoformat(),
            "bar": {
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
            },
            "recent_closes": closes,
            "position": str(ctx.position(bar.symbol)),
            "cash": str(ctx.cash()),
            "equity": str(ctx.equity()),
        }
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": json.dumps(facts)},
        ]

    def _ask(
        self, bar: Bar, messages: list[dict[str, str]], ctx: StrategyContext
    ) -> Decision | RejectedDecision | None:
        s = self.settings
        symbol = bar.symbol
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
        }
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        prompt_hash = (
            "sha256:"
            + hashlib.sha256(
                json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
        )
        response = self._post(symbol, body)
        if response is None:
            return None
        content = _content(response)
        if isinstance(content, RejectedDecision):
            return content
        now = ctx.now()
        key = f"{self.source}|{symbol}|{now.timestamp()!r}|{prompt_hash}"
        decision_id = "llm-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        return self._read(bar, ctx, content, decision_id, now, prompt_hash)

    def _post(self, symbol: str, body: dict[str, Any]) -> httpx.Response | None:
        """The endpoint's reply, or ``None`` (logged) when there is no answer to read."""
        import httpx  # here, so listing the plugin does not load it

        s = self.settings
        headers = {"Accept": "application/json"}
        if s.api_key is not None:
            headers["Authorization"] = f"Bearer {s.api_key.get_secret_value()}"
        for _attempt in range(2):
            sent = dict(body, response_format={"type": "json_object"}) if self._json_mode else body
            try:
                with httpx.Client(timeout=s.timeout_seconds) as client:
                    response = client.post(self.url, json=sent, headers=headers)
            except httpx.TimeoutException:
                log.warning("llm: no answer about %s within %gs", symbol, s.timeout_seconds)
                return None
            except httpx.HTTPError as exc:
                log.warning("llm: cannot reach %s: %s", self.url, type(exc).__name__)
                return None
            status = response.status_code
            if status == 400 and self._json_mode:
                # Not every server knows response_format; ask without it from now on.
                log.info("llm: the server refused response_format (HTTP 400); asking without it")
                self._json_mode = False
                continue
            break
        if status == 200:
            return response
        if status in (401, 403):
            log.error(
                "llm: the endpoint refused the API key (HTTP %d); check [strategies.llm] api_key",
                status,
            )
        elif status == 429:
            pause = _retry_after(response.headers.get("Retry-After"), self.settings.pause_seconds)
            self._paused_until = self._monotonic() + pause
            log.warning("llm: rate limited (HTTP 429); no questions for %gs", pause)
        elif status >= 500:
            log.warning("llm: server error (HTTP %d) asking about %s", status, symbol)
        else:
            log.warning("llm: HTTP %d asking about %s: %s", status, symbol, response.text[:200])
        return None

    # -- the answer ----------------------------------------------------------------

    def _read(
        self,
        bar: Bar,
        ctx: StrategyContext,
        content: str,
        decision_id: str,
        now: Any,
        prompt_hash: str,
    ) -> Decision | RejectedDecision:
        symbol = bar.symbol
        answer = first_json_object(content)
        if answer is None:
            return RejectedDecision(content, "the answer holds no JSON object")
        answered = answer.get("symbol", symbol)
        if not isinstance(answered, str) or answered.strip().upper() != symbol:
            return RejectedDecision(content, f"symbol: asked about {symbol}, answered {answered!r}")
        document = {k: v for k, v in answer.items() if k not in _OURS}
        document.update(
            symbol=symbol,
            id=decision_id,
            source=self.source,
            created_at=now,
            inputs_hash=prompt_hash,
        )
        keep = content[:RAW_MAX]
        if document.get("options") is None:
            item = read_decision(document, self.name, keep_raw=keep)
        else:
            item = read_options(document, self.name, bar, ctx, keep_raw=keep)
        if isinstance(item, RejectedDecision):
            return RejectedDecision(content, item.error)
        return item


def _content(response: httpx.Response) -> str | RejectedDecision:
    """The message text of a chat-completions reply."""
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return RejectedDecision(response.text[:RAW_MAX], "the reply is not a chat completion")
    if not isinstance(content, str) or not content.strip():
        return RejectedDecision(response.text[:RAW_MAX], "the reply's message has no content")
    return content


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (models wrap answers in prose or code fences)."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    start = text.find("{")
    while start != -1:
        try:
            value, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, dict):
                return value
        start = text.find("{", start + 1)
    return None


def _retry_after(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        return default  # an HTTP date; rare from these servers
    # A nonsensical value must neither stop the questions for good nor not at all.
    return default if seconds != seconds else min(max(seconds, 0.0), 3600.0)


@hookimpl
def tradepipe_register_strategies(register: Any) -> None:
    register(LlmSource)
