"""The API's read-only reports: the equity curve, tax lots, and the latest snapshot files.

Each mirrors a command: ``/equity`` the account snapshots the ledger keeps
(one per run, order and reconcile), ``/tax/lots`` and ``/tax/report``
``tradepipe tax lots|report`` (lots rebuilt from every fill, as there),
``/snapshots`` the files ``tradepipe snapshot`` last wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from tradepipe.money import money_text
from tradepipe.plugins.api.models import EquityCurve, Snapshots, TaxLots, TaxReport
from tradepipe.plugins.api.problems import LEDGER_ERRORS, problems
from tradepipe.plugins.api.service import Service, masked
from tradepipe.plugins.snapshot.files import (
    ENVELOPE_KEYS,
    FILES,
    TOKEN,
    TOKEN_KEYS,
    read_documents,
    scrub,
)
from tradepipe.plugins.tax.documents import lots_document, report_document, reporting
from tradepipe.plugins.tax.lots import Method
from tradepipe.plugins.tax.lots_db import Rebuilt, rebuilt_lots
from tradepipe.sink import account_fields

MethodParam = Annotated[Method, Query(description="Which lots a sale relieves first.")]
TickerParam = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9. /-]{1,32}$")]


def reports_router(service: Service) -> APIRouter:
    """The report routes over ``service``."""
    router = APIRouter()

    @router.get("/equity", tags=["ledger"], response_model=EquityCurve, responses=problems(503))
    def equity(
        limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        account: AccountParam = None,
        run: RunParam = None,
    ) -> dict[str, Any]:
        """Equity over time, oldest first, from the ledger's account snapshots.

        The snapshots of one account (the latest run's unless ``account`` or
        ``run`` says which); ``limit`` keeps the most recent. No points (not a
        404) while the ledger has none. An answer may be up to a second old.
        """

        def curve() -> dict[str, Any]:
            key = ""
            with service.ledger_if_any() as led:
                if led is not None:
                    key = led.account(account, run)
                rows = led.equity_curve(limit, key) if led is not None and key else []
            return masked(
                {
                    **_account(key),
                    "currency": rows[-1].currency if rows else None,
                    "points": [
                        {
                            "ts": r.ts.isoformat(),
                            "equity": money_text(r.equity),
                            "cash": money_text(r.cash),
                            "run_id": r.run_id,
                        }
                        for r in rows
                    ],
                }
            )

        return service.fresh(("equity", limit, account, run), curve)

    @router.get(
        "/tax/lots",
        tags=["tax"],
        response_model=TaxLots,
        response_model_exclude_unset=True,
        responses=LEDGER_ERRORS,
    )
    def tax_lots(
        method: MethodParam = Method.FIFO,
        only: Annotated[Literal["open", "closed"] | None, Query()] = None,
        symbol: TickerParam = None,
        account: AccountParam = None,
        run: RunParam = None,
    ) -> dict[str, Any]:
        """One account's open and closed (realized) lots, rebuilt from its fills
        (``tradepipe tax lots``)."""
        options = service.settings.tax.wash_sale_options
        # The rebuild rewrites the derived tables another call may be reading.
        with service.files, service.ledger() as led:
            key = led.account(account, run)
            open_rows, closed_rows, notes, _ = (
                rebuilt_lots(led.engine, method, led.where, key, wash_sale_options=options)
                if key
                else Rebuilt([], [])
            )
        if symbol:
            open_rows = [r for r in open_rows if r.symbol == symbol.upper()]
            closed_rows = [r for r in closed_rows if r.symbol == symbol.upper()]
        return masked(
            {
                **_account(key),
                **lots_document(method.value, open_rows, closed_rows, only),
                "notes": list(notes),
            }
        )

    @router.get("/tax/report", tags=["tax"], response_model=TaxReport, responses=LEDGER_ERRORS)
    def tax_report(
        year: Annotated[
            int | None,
            Query(ge=1900, le=2200, description="The tax year; absent: every year's sales."),
        ] = None,
        method: MethodParam = Method.FIFO,
        combine: Annotated[
            bool,
            Query(description="One row per sale, acquired VARIOUS when its lots' dates differ."),
        ] = False,
        account: AccountParam = None,
        run: RunParam = None,
    ) -> dict[str, Any]:
        """One account's sales in a year (or, without ``year``, every year) as Form 8949
        rows with their box, and the totals by box and by term (``tradepipe tax report``)."""
        tax = service.settings.tax
        # The rebuild rewrites the derived tables another call may be reading.
        with service.files, service.ledger() as led:
            key = led.account(account, run)
            _, closed, notes, by_sale = (
                rebuilt_lots(
                    led.engine, method, led.where, key, wash_sale_options=tax.wash_sale_options
                )
                if key
                else Rebuilt([], [])
            )
        reported = reporting(tax.basis_reported, by_sale)
        return masked(
            {
                **_account(key),
                **report_document(closed, year, method.value, reported, combine),
                "notes": list(notes),
            }
        )

    @router.get("/snapshots", tags=["snapshots"], response_model=Snapshots)
    def snapshots() -> dict[str, Any]:
        """The files ``tradepipe snapshot`` last wrote, parsed; ``null`` for a missing one."""
        out = Path(service.settings.snapshot.out)
        found = read_documents(out)
        hidden = sorted(
            {s for s in service.settings.secret_values() if len(s) >= 4}, key=len, reverse=True
        )
        files: dict[str, Any] = {}
        for name in FILES:
            document = found.get(name)
            if not isinstance(document, dict):
                document = None
            elif name == TOKEN:
                # Only what the snapshot itself would write, whatever else the file holds.
                allowed = (*ENVELOPE_KEYS, *TOKEN_KEYS)
                document = {k: v for k, v in document.items() if k in allowed}
            files[name] = None if document is None else scrub(document, hidden)
        return masked({"directory": str(out), "files": files})

    return router


AccountParam = Annotated[
    str | None,
    Query(
        description="The account to cover: a key from `tradepipe ledger accounts`, an account "
        "id (masked or not), a paper account file's name or a replay's run id. Default: the "
        "latest run's account."
    ),
]
RunParam = Annotated[str | None, Query(description="Cover the account this run traded against.")]


def _account(key: str) -> dict[str, str | None]:
    """Which account an answer covers (``null`` while the ledger has no run)."""
    if not key:
        return {"account": None, "account_label": None}
    return dict(account_fields(key))
