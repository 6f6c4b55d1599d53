"""The child side of the forked helpers (B's parse, half of a large diff's comparisons)."""

from __future__ import annotations


def reply(conn, compute) -> None:
    """Send ``compute()``'s message on ``conn`` and close it. If computing or sending fails, send
    ("crash",) instead, so the parent does the work itself and meets any error there."""
    try:
        conn.send(compute())
    except BaseException:
        try:
            conn.send(("crash",))
        except BaseException:
            pass
    finally:
        conn.close()
