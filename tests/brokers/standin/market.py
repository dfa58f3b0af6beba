"""Market data: snapshots (pre-flight first, then strings), history bars, the scanner.

``/_standin/market`` overrides land here (``set_market``).
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from .instruments import STOCKS, option_greeks
from .model import fmt_price, fmt_volume
from .state import State
from .wire import Request, fail, is_number, parse_bool, parse_int

BAR_SECONDS = {
    "1min": 60,
    "2min": 120,
    "3min": 180,
    "5min": 300,
    "10min": 600,
    "15min": 900,
    "30min": 1800,
    "1h": 3600,
    "2h": 7200,
    "3h": 10800,
    "4h": 14400,
    "8h": 28800,
    "1d": 86400,
    "1w": 604800,
    "1m": 2592000,
}
PERIOD_UNITS = {"min": 60, "h": 3600, "d": 86400, "w": 604800, "m": 2592000, "y": 31536000}


class MarketMixin(State):
    """Market-data and scanner endpoints."""

    def _quote(self, conid: int) -> dict[str, str]:
        last = self._last_price(conid)
        ticker, sec_type, listing, _, _, _ = self._contract(conid)
        volume = 1_000_000 + zlib.crc32(f"v{conid}".encode()) % 20_000_000
        prior = round(last * 0.995, 2)
        quote = {
            "31": fmt_price(last),
            "84": fmt_price(round(last - 0.01, 2)),
            "86": fmt_price(round(last + 0.01, 2)),
            "88": f"{1300:,}",
            "85": f"{600:,}",
            "87": fmt_volume(volume),
            "7762": str(volume),
            "7059": "100",
            "55": ticker,
            "6008": str(conid),
            "6070": sec_type,
            "6509": "RpB",
            "7221": listing,
            "7295": fmt_price(prior),
            "70": fmt_price(round(last * 1.01, 2)),
            "71": fmt_price(round(last * 0.985, 2)),
            "7741": fmt_price(prior),
            "82": fmt_price(round(last - prior, 2)),
            "83": f"{(last - prior) / prior * 100:.2f}%",
        }
        option = self.options.get(conid)
        if option is not None:
            quote.update(option_greeks(option, self.clock.today()))
        quote.update(self.overrides.get(conid, {}))
        if self.closed and quote.get("31") and quote["31"][0] not in "CH":
            quote["31"] = "C" + quote["31"]
        return quote

    def snapshot(self, req: Request) -> Any:
        self._require_accounts()
        raw = req.query.get("conids", "")
        conids = [parse_int(c, "conids") for c in raw.split(",") if c.strip()]
        if not conids:
            fail("conids is required")
        fields = [f.strip() for f in (req.query.get("fields") or "").split(",") if f.strip()]
        out = []
        stamp = self.clock.now_ms()
        for conid in conids:
            known = self.stream_fields.setdefault(conid, [])
            known.extend(f for f in fields if f not in known)
            if conid not in self.streaming:  # pre-flight: starts the stream, no values yet
                self.streaming.add(conid)
                out.append({"conid": conid, "conidEx": str(conid)})
                continue
            quote = self._quote(conid)
            item: dict[str, Any] = {
                "conid": conid,
                "conidEx": str(conid),
                "_updated": stamp,
                "server_id": "q0",
                "6119": "q0",
            }
            for f in fields or known:
                if f in quote:
                    item[f] = quote[f]
            out.append(item)
        return out

    def unsubscribe(self, req: Request) -> Any:
        body = req.body
        conid = body.get("conid") if isinstance(body, dict) else None
        if not isinstance(conid, int) or conid not in self.streaming:
            fail("unknown", 500)
        self.streaming.discard(conid)
        return {"success": True}

    def unsubscribe_all(self, req: Request) -> Any:
        self.streaming.clear()
        return {"unsubscribed": True}

    def history(self, req: Request) -> Any:
        q = req.query
        conid = parse_int(q.get("conid"), "conid")
        bar = q.get("bar")
        if bar not in BAR_SECONDS:
            fail(f"unsupported bar {bar!r}")
        period = q.get("period") or "1w"
        m = re.fullmatch(r"(\d+)(min|h|d|w|m|y)", period)
        if m is None:
            fail(f"unsupported period {period!r}")
        if not self._known_conid(conid):
            fail("No data.", 500)
        bar_s = BAR_SECONDS[bar]
        period_s = int(m.group(1)) * PERIOD_UNITS[m.group(2)]
        count = max(1, min(1000, period_s // bar_s))
        if q.get("startTime"):
            try:
                end = datetime.strptime(q["startTime"], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                fail("startTime must be YYYYMMDD-HH:mm:ss")
            end_s = int(end.timestamp())
        else:
            end_s = int(self.clock.time())
        last_bar = end_s // bar_s
        base = self._last_price(conid)
        seed = zlib.crc32(str(conid).encode()) % 1000 / 100.0

        def price(k: float) -> float:
            return base * (1 + 0.03 * math.sin(k * 0.37 + seed) + 0.01 * math.sin(k * 0.11))

        data = []
        for k in range(last_bar - count + 1, last_bar + 1):
            o, c = price(k - 0.5), price(k)
            h, lo = max(o, c) * 1.002, min(o, c) * 0.998
            v = 1000 + zlib.crc32(f"{conid}:{k}".encode()) % 9000
            data.append(
                {
                    "o": round(o, 2),
                    "c": round(c, 2),
                    "h": round(h, 2),
                    "l": round(lo, 2),
                    "v": float(v),
                    "t": k * bar_s * 1000,
                }
            )
        high = max(data, key=lambda d: d["h"])
        low = min(data, key=lambda d: d["l"])
        ticker, _, _, name, _, _ = self._contract(conid)
        return {
            "serverId": "20477",
            "symbol": ticker,
            "text": name,
            "priceFactor": 100,
            "startTime": datetime.fromtimestamp(data[0]["t"] / 1000, UTC).strftime(
                "%Y%m%d-%H:%M:%S"
            ),
            "high": f"{round(high['h'] * 100)}/{high['v']:g}/0",
            "low": f"{round(low['l'] * 100)}/{low['v']:g}/0",
            "timePeriod": period,
            "barLength": bar_s,
            "mdAvailability": "S",
            "outsideRth": parse_bool(q.get("outsideRth")),
            "volumeFactor": 1,
            "direction": -1,
            "points": len(data) - 1,
            "travelTime": 48,
            "data": data,
        }

    # ----- scanner --------------------------------------------------------------------------

    def scanner_params(self, req: Request) -> Any:
        return {
            "scan_type_list": [
                {"display_name": "Top % Gainers", "code": "TOP_PERC_GAIN", "instruments": ["STK"]},
                {"display_name": "Most Active", "code": "MOST_ACTIVE", "instruments": ["STK"]},
                {
                    "display_name": "Top Trade Count",
                    "code": "TOP_TRADE_COUNT",
                    "instruments": ["STK"],
                },
            ],
            "instrument_list": [
                {
                    "display_name": "US Stocks",
                    "type": "STK",
                    "filters": ["priceAbove", "priceBelow"],
                }
            ],
            "filter_list": [
                {
                    "group": "Price",
                    "display_name": "Price Above",
                    "code": "priceAbove",
                    "type": "non-range",
                },
                {
                    "group": "Price",
                    "display_name": "Price Below",
                    "code": "priceBelow",
                    "type": "non-range",
                },
            ],
            "location_tree": [
                {
                    "display_name": "US Stocks",
                    "type": "STK",
                    "locations": [
                        {"display_name": "Listed/NASDAQ", "type": "STK.US.MAJOR", "locations": []}
                    ],
                }
            ],
        }

    def scanner_run(self, req: Request) -> Any:
        body = req.body
        if not isinstance(body, dict):
            fail("body must be an object")
        for key in ("instrument", "location", "type"):
            if not isinstance(body.get(key), str):
                fail(f"missing required field '{key}'")
        filters = body.get("filter", [])
        if not isinstance(filters, list):
            fail("'filter' must be an array")
        above = below = None
        for f in filters:
            if isinstance(f, dict) and is_number(f.get("value")):
                if f.get("code") == "priceAbove":
                    above = float(f["value"])
                elif f.get("code") == "priceBelow":
                    below = float(f["value"])
        contracts = []
        if body["instrument"] == "STK":
            for stock in STOCKS:
                last = self._last_price(stock.conid)
                if not stock.is_us or (above is not None and last <= above):
                    continue
                if below is not None and last >= below:
                    continue
                volume = int(self._quote(stock.conid)["7762"])
                contracts.append(
                    {
                        "server_id": str(len(contracts)),
                        "column_name": "Trades",
                        "symbol": stock.symbol,
                        "conidex": str(stock.conid),
                        "con_id": stock.conid,
                        "available_chart_periods": "#R|1",
                        "company_name": stock.name,
                        "scan_data": fmt_volume(volume / 40),
                        "contract_description_1": stock.symbol,
                        "listing_exchange": stock.listing,
                        "sec_type": "STK",
                    }
                )
        return {"contracts": contracts[:50], "scan_data_column_name": "Trades"}

    def _set_market(self, body: dict[str, Any]) -> Any:
        for key, value in body.items():
            if key == "closed":
                if not isinstance(value, bool):
                    fail("closed must be a boolean")
                self.closed = value
                continue
            conid = parse_int(key, "conid key")
            if not isinstance(value, dict):
                fail(f"market[{key}] must be an object of field id -> value")
            fields = self.overrides.setdefault(conid, {})
            for f, v in value.items():
                if v is None:
                    fields.pop(str(f), None)
                else:
                    fields[str(f)] = v if isinstance(v, str) else str(v)
        return {"ok": True}
