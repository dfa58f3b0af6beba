"""Accounts and the portfolio: /iserver/accounts, /portfolio/* (summary, ledger, positions).

Positions are cached as the gateway caches them: the first read after a seed or reset sees
them; later fills stay invisible until ``positions/invalidate``. Fills change positions,
cash and realized P&L here.
"""

from __future__ import annotations

from typing import Any

from .instruments import STOCK_BY_CONID
from .model import Order
from .session import SERVER_INFO
from .state import State
from .wire import Request, fail, parse_int

PAGE_SIZE = 100


class PortfolioMixin(State):
    """Account and portfolio endpoints, and position bookkeeping."""

    def iserver_accounts(self, req: Request) -> Any:
        self.accounts_queried = True
        a = self.account
        return {
            "accounts": [a],
            "acctProps": {
                a: {
                    "hasChildAccounts": False,
                    "supportsCashQty": True,
                    "noFXConv": False,
                    "isProp": False,
                    "supportsFractions": False,
                    "allowCustomerTime": False,
                }
            },
            "aliases": {a: a},
            "allowFeatures": {
                "showGFIS": True,
                "showEUCostReport": False,
                "allowEventContract": False,
                "allowFXConv": True,
                "allowFinancialLens": False,
                "allowMTA": True,
                "allowTypeAhead": True,
                "allowEventTrading": False,
                "snapshotRefreshTimeout": 30,
                "liteUser": False,
                "showWebNews": True,
                "research": True,
                "debugPnl": True,
                "showTaxOpt": True,
                "showImpactDashboard": True,
                "allowDynAccount": False,
                "allowCrypto": False,
                "allowedAssetTypes": "STK,CFD,OPT,FOP,WAR,FUT,BAG,PDC,CASH,IND,BOND,BILL,FUND,SLB,"
                "News,CMDTY,IOPT,ICU,ICS,PHYSS,CRYPTO",
            },
            "chartPeriods": {"STK": ["*"], "OPT": ["2h", "1d", "2d", "1w", "1m"]},
            "groups": [],
            "profiles": [],
            "selectedAccount": a,
            "serverInfo": dict(SERVER_INFO),
            "sessionId": self.session[:16],
            "isFT": False,
            "isPaper": self.is_paper,
        }

    def portfolio_accounts(self, req: Request) -> Any:
        a = self.account
        return [
            {
                "id": a,
                "PrepaidCrypto-Z": False,
                "PrepaidCrypto-P": False,
                "brokerageAccess": True,
                "accountId": a,
                "accountVan": a,
                "accountTitle": "Stand-in Account",
                "displayName": a,
                "accountAlias": None,
                "accountStatus": self.login_ms - 86_400_000 * 365,
                "currency": "USD",
                # IBKR's own examples show "DEMO" for live accounts too: not a paper indicator.
                "type": "DEMO",
                "tradingType": "STKNOPT",
                "businessType": "IB_PROSERVE",
                "ibEntity": "IBLLC-US",
                "faclient": False,
                "clearingStatus": "O",
                "covestor": False,
                "noClientTrading": False,
                "trackVirtualFXPortfolio": True,
                "parent": {
                    "mmc": [],
                    "accountId": "",
                    "isMParent": False,
                    "isMChild": False,
                    "isMultiplex": False,
                },
                "desc": a,
            }
        ]

    def portfolio_summary(self, req: Request, account: str) -> Any:
        self._require_account(account)
        signed, gross, _ = self._market_value()
        net = self.cash + signed
        available = net - 0.25 * gross
        ts = self.clock.now_ms()

        def item(amount: float) -> dict[str, Any]:
            return {
                "amount": float(round(amount, 2)),
                "currency": "USD",
                "isNull": False,
                "severity": 0,
                "timestamp": ts,
                "value": None,
            }

        return {
            "netliquidation": item(net),
            "totalcashvalue": item(self.cash),
            "availablefunds": item(available),
            "buyingpower": item(available * 4),
            "grosspositionvalue": item(gross),
            "equitywithloanvalue": item(net),
            "excessliquidity": item(available),
            "initmarginreq": item(0.25 * gross),
            "maintmarginreq": item(0.25 * gross),
            "accountcode": {**item(0.0), "amount": 0.0, "isNull": True, "value": account},
        }

    def portfolio_ledger(self, req: Request, account: str) -> Any:
        self._require_account(account)
        signed, _, unrealized = self._market_value()
        ts = int(self.clock.time())

        def entry(currency: str) -> dict[str, Any]:
            return {
                "commoditymarketvalue": 0.0,
                "futuremarketvalue": 0.0,
                "settledcash": round(self.cash, 2),
                "exchangerate": 1,
                "sessionid": 1,
                "cashbalance": round(self.cash, 2),
                "corporatebondsmarketvalue": 0.0,
                "warrantsmarketvalue": 0.0,
                "netliquidationvalue": round(self.cash + signed, 2),
                "interest": 0.0,
                "unrealizedpnl": round(unrealized, 2),
                "stockmarketvalue": round(signed, 2),
                "moneyfunds": 0.0,
                "currency": currency,
                "realizedpnl": round(self.realized, 2),
                "funds": 0.0,
                "acctcode": account,
                "issueroptionsmarketvalue": 0.0,
                "key": "LedgerList",
                "timestamp": ts,
                "severity": 0,
                "stockoptionmarketvalue": 0.0,
                "futuresonlypnl": 0.0,
                "tbondsmarketvalue": 0.0,
                "futureoptionmarketvalue": 0.0,
                "cashbalancefxsegment": 0.0,
                "secondkey": currency,
                "tbillsmarketvalue": 0.0,
                "dividends": 0.0,
            }

        return {"USD": entry("USD"), "BASE": entry("BASE")}

    def _cached_positions(self) -> list[dict[str, Any]]:
        if self.position_cache is None:
            self.position_cache = [dict(p) for p in self.positions.values()]
        return self.position_cache

    def positions_page(self, req: Request, account: str, page: str) -> Any:
        self._require_account(account)
        number = parse_int(page, "pageId")
        if number < 0:
            fail("pageId must not be negative")
        return self._cached_positions()[number * PAGE_SIZE : (number + 1) * PAGE_SIZE]

    def position_by_conid(self, req: Request, account: str, conid: str) -> Any:
        self._require_account(account)
        wanted = parse_int(conid, "conid")
        return [p for p in self._cached_positions() if p["conid"] == wanted]

    def positions_invalidate(self, req: Request, account: str) -> Any:
        self._require_account(account)
        self.position_cache = None
        return {"message": "success"}

    def _position_defaults(self, conid: int) -> dict[str, Any]:
        ticker, sec_type, listing, name, currency, multiplier = self._contract(conid)
        option = self.options.get(conid)
        return {
            "acctId": self.account,
            "conid": conid,
            "contractDesc": ticker,
            "position": 0.0,
            "mktPrice": self._last_price(conid),
            "mktValue": 0.0,
            "currency": currency,
            "avgCost": 0.0,
            "avgPrice": 0.0,
            "realizedPnl": 0.0,
            "unrealizedPnl": 0.0,
            "exchs": None,
            "expiry": option.maturity.strftime("%Y%m%d") if option else None,
            "putOrCall": option.right if option else None,
            "multiplier": multiplier if option else None,
            "strike": f"{option.strike:g}" if option else "0",
            "exerciseStyle": None,
            "conExchMap": [],
            "assetClass": sec_type,
            "undConid": option.underlying.conid if option else 0,
            "model": "",
            "ticker": ticker,
            "name": name,
            "fullName": ticker,
            "listingExchange": listing,
            "isUS": STOCK_BY_CONID[conid].is_us if conid in STOCK_BY_CONID else True,
            "pageSize": PAGE_SIZE,
        }

    @staticmethod
    def _revalue(pos: dict[str, Any]) -> None:
        mult = float(pos.get("multiplier") or 1.0)
        qty = float(pos["position"])
        pos["mktValue"] = round(qty * float(pos["mktPrice"]) * mult, 2)
        pos["avgCost"] = float(pos["avgPrice"]) * mult
        pos["unrealizedPnl"] = round(
            (float(pos["mktPrice"]) - float(pos["avgPrice"])) * qty * mult, 2
        )

    def seed_positions(self, items: Any) -> dict[str, Any]:
        if not isinstance(items, list):
            fail("positions must be a list")
        seeded: dict[int, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("conid"), int):
                fail("each position needs an integer conid")
            pos = {**self._position_defaults(item["conid"]), **item}
            pos["position"] = float(pos["position"])
            if "avgPrice" not in item:
                pos["avgPrice"] = float(pos["mktPrice"])
            explicit = {k for k in ("mktValue", "avgCost", "unrealizedPnl") if k in item}
            computed = dict(pos)
            self._revalue(computed)
            for key in ("mktValue", "avgCost", "unrealizedPnl"):
                if key not in explicit:
                    pos[key] = computed[key]
            seeded[pos["conid"]] = pos
        self.positions = seeded
        self.position_cache = None
        return {"count": len(seeded)}

    def _apply_fill_to_position(self, order: Order, qty: float, price: float) -> None:
        signed = qty if order.ticket.side == "BUY" else -qty
        self._book(order.ticket.conid, signed, price, order.sec_type, order.multiplier)

    def _book(
        self, conid: int, signed: float, price: float, sec_type: str, multiplier: float
    ) -> None:
        """A position moves by ``signed`` at ``price`` (a combo's legs are booked one by one)."""
        qty = abs(signed)
        pos = self.positions.get(conid)
        if pos is None:
            pos = self._position_defaults(conid)
            pos["avgPrice"] = price
            if sec_type == "OPT":
                pos["multiplier"] = multiplier
        old = float(pos["position"])
        new = old + signed
        avg = float(pos["avgPrice"])
        mult = float(pos.get("multiplier") or 1.0)
        if old == 0 or (old > 0) == (signed > 0):
            avg = (abs(old) * avg + qty * price) / (abs(old) + qty)
        else:
            closed = min(abs(old), qty)
            pnl = (price - avg) * closed * mult * (1 if old > 0 else -1)
            pos["realizedPnl"] = float(pos.get("realizedPnl") or 0.0) + pnl
            self.realized += pnl
            if abs(new) > 1e-12 and (new > 0) != (old > 0):
                avg = price  # flipped through zero
        if abs(new) < 1e-12:
            self.positions.pop(conid, None)
            return
        pos.update(position=new, avgPrice=avg, mktPrice=self._last_price(conid, price))
        self._revalue(pos)
        self.positions[conid] = pos
