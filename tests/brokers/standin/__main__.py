"""``python -m standin --cert CERT.pem --key KEY.pem ...``: the gateway stand-in over HTTPS."""

from __future__ import annotations

import sys

from .server import main

sys.exit(main())
