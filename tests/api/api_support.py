"""Values the API tests share."""

#: A buy far below the market: it stays working at the paper broker until cancelled.
LIMIT_BUY = {
    "symbol": "AAPL",
    "side": "buy",
    "quantity": 1,
    "order_type": "limit",
    "limit_price": 1,
}
