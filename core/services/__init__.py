"""What the command line and the HTTP API both do, with neither click nor a web framework.

Each module here is a plain library function or two that a ``tradepipe``
command and an API route call alike: reading the kill switch's state file
(:mod:`.halt`), reading a live run's status file and telling whether that run
is still up (:mod:`.status`), writing small private JSON files atomically
(:mod:`.files`), showing money, costs and positions by one set of rules
(:mod:`.figures`), and asking a broker whether it can be used and about an
order's end (:mod:`.broker`).
"""
