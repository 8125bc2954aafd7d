"""One-off sends (``digest send``): a digest of one day to any address, or to a file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from digest.compose import make_message_id
from digest.deliver import send_one
from digest.errors import EmptyListingError
from digest.files import write_atomic
from digest.models import Subscriber
from digest.run.context import Context
from digest.run.fetch import store_listing
from digest.run.messages import compose, outgoing
from digest.select import DayMatcher, select

#: The states in which an address is on the list: a one-off to it carries their links.
SUBSCRIBED = ("active", "paused")


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

    Its footer says it is a one-off, not a subscription. To someone who is not a subscriber
    it carries no unsubscribe link and no ``List-Unsubscribe`` (there is nothing to leave);
    to an address that subscribes (active or paused), their own unsubscribe and manage links
    and headers, as any email to a subscriber has. Returns the number of papers in it (0:
    nothing matched and nothing was sent); raises :class:`EmptyListingError` when the
    listing of ``day`` has no papers at all.
    """
    listing = ctx.store.papers.listing(day)
    # A listing stored empty (fetched before the day's papers were out) is asked again, from
    # every source, and stored: the papers under the keys they are stored (and sent) under.
    if listing is None or not listing.papers:
        listing = store_listing(ctx.store, await ctx.source.fetch(day), ctx.now)
    if not listing.papers:
        raise EmptyListingError(day, listing.source)
    matches = DayMatcher(listing.papers).select(keywords, exclude)
    if not matches:
        return 0
    sub = Subscriber(email=to, keywords=tuple(keywords), exclude=tuple(exclude))
    known = ctx.store.members.subscriber(to)
    if known is not None and known.status in SUBSCRIBED:
        sub = replace(sub, id=known.id, token=known.token, name=known.name, abstract=known.abstract)
    selection = select(matches, set(), ctx.config.mail.max_papers)
    message_id = make_message_id(ctx.config.mail.sender)
    message = compose(
        ctx,
        sub,
        day,
        selection,
        len(listing.papers),
        message_id=message_id,
        created_at=ctx.now,
        one_off=True,
    )
    if out is not None:
        write_atomic(out, message.data)
        return len(selection.all)
    outcome = await send_one(ctx.sender, outgoing(ctx, "manual", to, message, message_id))
    if outcome is not None and not outcome.ok and outcome.error is not None:
        raise outcome.error
    return len(selection.all)
