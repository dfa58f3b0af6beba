"""Contract look-ups: /trsrv/stocks and /iserver/secdef/search, strikes and info.

``secdef/strikes`` answers empty arrays unless ``secdef/search`` was called for that
underlying first (without ``name=true``); ``secdef/info`` hands out the option conids that
snapshots and orders then know.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .instruments import (
    STOCK_BY_CONID,
    STOCKS,
    OptionContract,
    option_conid,
    option_months,
    strikes_for,
)
from .state import State
from .wire import Request, fail, parse_int


class ContractsMixin(State):
    """Contract endpoints."""

    def trsrv_stocks(self, req: Request) -> Any:
        symbols = [s.strip() for s in req.query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            fail("symbols is required")
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol in symbols:
            groups: dict[str, dict[str, Any]] = {}
            for stock in STOCKS:
                if stock.symbol != symbol:  # upper case only, as documented
                    continue
                group = groups.setdefault(
                    stock.name,
                    {"name": stock.name, "chineseName": None, "assetClass": "STK", "contracts": []},
                )
                group["contracts"].append(
                    {"conid": stock.conid, "exchange": stock.exchange, "isUS": stock.is_us}
                )
            out[symbol] = list(groups.values())
        return out

    def secdef_search(self, req: Request) -> Any:
        params: dict[str, Any] = dict(req.query)
        if req.method == "POST":
            if not isinstance(req.body, dict):
                fail("body must be an object")
            params = req.body
        symbol = params.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            fail("symbol is required")
        by_name = params.get("name") in (True, "true", "True", "1")
        sec_type = str(params.get("secType") or "STK").upper()
        if sec_type != "STK":
            return []
        wanted = symbol.strip().upper()
        results = []
        months = option_months(self.clock.today())
        for stock in STOCKS:
            if not stock.searchable:
                continue
            hit = wanted in stock.name.upper() if by_name else stock.symbol == wanted
            if not hit:
                continue
            if not by_name:  # the documented quirk: name=true does not prepare strikes
                self.searched.add(stock.conid)
            sections: list[dict[str, Any]] = [{"secType": "STK"}]
            if stock.is_us:
                sections.append(
                    {
                        "secType": "OPT",
                        "months": ";".join(code for code, _ in months),
                        "exchange": "SMART;AMEX;BATS;BOX;CBOE;CBOE2;EDGX;ISE;MIAX;PHLX",
                    }
                )
                sections.append({"secType": "BAG"})
            opt = ";".join(d.strftime("%Y%m%d") for _, ds in months for d in ds)
            results.append(
                {
                    "conid": str(stock.conid),
                    "companyHeader": f"{stock.name} - {stock.exchange}",
                    "companyName": stock.name,
                    "symbol": stock.symbol,
                    "description": stock.exchange,
                    "restricted": None,
                    "fop": None,
                    "opt": opt if stock.is_us else None,
                    "war": None,
                    "sections": sections,
                }
            )
        return results

    def _month_expiries(self, month: str) -> list[date] | None:
        for code, expiries in option_months(self.clock.today()):
            if code == month.upper():
                return expiries
        return None

    def secdef_strikes(self, req: Request) -> Any:
        conid = parse_int(req.query.get("conid"), "conid")
        month = req.query.get("month", "")
        stock = STOCK_BY_CONID.get(conid)
        empty: dict[str, list[float]] = {"call": [], "put": []}
        if stock is None or not stock.is_us or conid not in self.searched:
            return empty
        if self._month_expiries(month) is None:
            return empty
        strikes = strikes_for(stock)
        return {"call": list(strikes), "put": list(strikes)}

    def secdef_info(self, req: Request) -> Any:
        q = req.query
        conid = parse_int(q.get("conid"), "conid")
        sec_type = (q.get("sectype") or q.get("secType") or "").upper()
        stock = STOCK_BY_CONID.get(conid)
        if sec_type != "OPT" or stock is None or not stock.is_us:
            return []
        expiries = self._month_expiries(q.get("month", ""))
        if expiries is None:
            return []
        try:
            strike = float(q.get("strike", ""))
        except ValueError:
            fail("strike must be a number")
        if strike not in strikes_for(stock):
            return []
        right = (q.get("right") or "").upper()[:1]
        rights = [right] if right in ("C", "P") else ["C", "P"]
        out = []
        for maturity in expiries:
            for r in rights:
                contract = OptionContract(
                    option_conid(stock, maturity, strike, r), stock, maturity, strike, r
                )
                self.options[contract.conid] = contract
                out.append(contract.as_info())
        return out
