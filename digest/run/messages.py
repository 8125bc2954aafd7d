"""One subscriber's digest as an email: the signed links, the rendered bodies, the message
bytes and the item handed to the sender."""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from digest.compose import (
    EmailLinks,
    build_message,
    clean_for_smtp,
    delivery_token,
    list_id_for,
    sender_address,
    tokens,
    unsubscribe_token,
    verp_address,
)
from digest.compose.feedback import FeedbackLinks
from digest.deliver import Outgoing
from digest.models import Subscriber
from digest.run.context import Context
from digest.select import Selection


def links_for(ctx: Context, sub: Subscriber, day: date) -> EmailLinks:
    """The links of ``sub``'s email; without an id (someone who is not a subscriber, sent a
    one-off) no unsubscribe or manage link: there is nothing they would act on."""
    base = ctx.config.base_url
    ident = str(sub.id)
    return EmailLinks(
        unsubscribe_url=f"{base}/unsubscribe?token={tokens.sign(ctx.secret, 'unsubscribe', ident)}"
        if sub.id is not None
        else None,
        manage_url=f"{base}/manage?token={tokens.sign(ctx.secret, 'manage', ident)}"
        if sub.id is not None
        else None,
        feed_url=f"{base}/feeds/{sub.token}.atom" if sub.token else f"{base}/feed.atom",
        archive_url=f"{base}/archive/{day.isoformat()}",
        feedback=FeedbackLinks(base, ctx.secret, sub.id) if sub.id is not None else None,
    )


class Composed(NamedTuple):
    data: bytes
    clean: bool  #: see :attr:`Outgoing.clean`
    day: date | None = None  #: the listing date of the digest (the outbox names its file so)


def compose(
    ctx: Context,
    sub: Subscriber,
    day: date,
    selection: Selection,
    total: int,
    *,
    message_id: str,
    created_at: datetime,
    since: date | None = None,
    one_off: bool = False,
) -> Composed:
    """The message bytes of one subscriber's digest (``one_off``: a ``digest send``; for
    someone who is not a subscriber, no unsubscribe link and no ``List-Unsubscribe``)."""
    cfg = ctx.config
    links = links_for(ctx, sub, day)
    rendered = ctx.renderer.render_digest(
        day=day,
        subscriber=sub,
        matches=selection.all,
        links=links,
        total_in_listing=total,
        max_papers=len(selection.shown),
        since=since,
        one_off=one_off,
        abstract=sub.abstract or cfg.mail.abstract,
    )
    data = build_message(
        sender=cfg.mail.sender,
        to=sub.email,
        to_name=sub.name,
        subject=rendered.subject,
        text=rendered.text_body,
        html=rendered.html_body,
        message_id=message_id,
        date=created_at,
        list_id=cfg.mail.list_id or list_id_for(cfg.mail.sender),
        unsubscribe_url=links.unsubscribe_url,
        unsubscribe_mailto=unsubscribe_mailto(ctx, sub) if links.unsubscribe_url else None,
    )
    return Composed(data, clean_for_smtp(rendered.text_body, rendered.html_body), day)


def unsubscribe_mailto(ctx: Context, sub: Subscriber) -> str:
    """The ``List-Unsubscribe`` mailto: with ``mail.bounce_address``, an address of it
    carrying the subscriber's signed token (also in the subject), which ``digest mailbox``
    reads; without, the From address (which nothing reads)."""
    bounce = ctx.config.mail.bounce_address
    if bounce and sub.id is not None:
        token = unsubscribe_token(ctx.secret, sub.id)
        return f"mailto:{verp_address(bounce, token)}?subject=unsubscribe%20{token}"
    return f"mailto:{sender_address(ctx.config.mail.sender)}?subject=unsubscribe"


def envelope_from(ctx: Context, key: str | None = None) -> str:
    """The envelope sender (MAIL FROM) of delivery ``key``: ``bounces+<token>@…`` (VERP)
    with ``mail.bounce_address`` set, so its bounce names it; else the From address."""
    bounce = ctx.config.mail.bounce_address
    if bounce is None:
        return sender_address(ctx.config.mail.sender)
    return verp_address(bounce, delivery_token(ctx.secret, key) if key else None)


def outgoing(ctx: Context, key: str, to: str, message: Composed, message_id: str) -> Outgoing:
    """What the sender gets for one composed digest (``key``: its delivery id)."""
    return Outgoing(
        key=key,
        sender=envelope_from(ctx, key),
        recipients=(to,),
        data=message.data,
        message_id=message_id,
        clean=message.clean,
        day=message.day,
    )
