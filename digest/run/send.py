"""One-off sends (``digest send``): a digest of one day to any address, or to a file."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from digest.compose import make_message_id
from digest.deliver import send_one
from digest.files import write_atomic
from digest.models import Subscriber
from digest.run.context import Context
from digest.run.messages import compose, outgoing
from digest.select import DayMatcher, select


async def send_once(
    ctx: Context,
    day: date,
    to: str,
    keywords: Sequence[str],
    exclude: Sequence[str],
    *,
    out: Path | None = None,
) -> int:
    """A one-off digest of ``day`` to any address; touches no subscriber's history.

    Returns the number of papers in it (0: nothing matched and nothing was sent).
    """
    listing = ctx.store.listing(day) or await ctx.source.fetch(day)
    matches = DayMatcher(listing.papers).select(keywords, exclude)
    if not matches:
        return 0
    sub = Subscriber(email=to, keywords=tuple(keywords), exclude=tuple(exclude))
    selection = select(matches, set(), ctx.config.mail.max_papers)
    message_id = make_message_id(ctx.config.mail.sender)
    message = compose(
        ctx, sub, day, selection, len(listing.papers), message_id=message_id, created_at=ctx.now
    )
    if out is not None:
        write_atomic(out, message.data)
        return len(selection.all)
    outcome = await send_one(ctx.sender, outgoing(ctx, "manual", to, message, message_id))
    if outcome is not None and not outcome.ok and outcome.error is not None:
        raise outcome.error
    return len(selection.all)
