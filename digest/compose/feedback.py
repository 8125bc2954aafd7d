"""The "more like this" and "less like this" links of each paper in a subscriber's email.

Both links of a paper carry one signed token of (subscriber id, paper key), made with the
run's secret for the purpose ``feedback`` (:mod:`digest.compose.tokens`): it cannot be
forged, nor moved to another paper or subscriber, nor used as an unsubscribe or manage
token (nor they as it). The links lead to ``/more`` and ``/less`` of ``digest serve``,
where a GET shows one button and only its POST records anything (mail scanners prefetch
links). Tokens do not expire: like an unsubscribe link, an old email's link keeps working.

A private feed's file is shared by every subscriber of the same queries: its entries carry
the links with a placeholder token naming only the paper (:func:`feed_links`), which
``digest serve`` replaces with the reader's own tokens as it serves the feed
(:func:`personalise`). The public feed has no such links.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from digest.compose.tokens import BadToken, sign, verify

PURPOSE = "feedback"
#: The link kinds: the path of each link, and the like kind it records.
KINDS = {"more": "like", "less": "dislike"}


def feedback_token(secret: bytes, subscriber_id: int, key: str) -> str:
    """The token of ``subscriber_id``'s feedback on the paper ``key``."""
    return sign(secret, PURPOSE, f"{subscriber_id}:{key}")


def read_feedback_token(secret: bytes, token: str) -> tuple[int, str]:
    """(subscriber id, paper key) of a token made by :func:`feedback_token` with ``secret``;
    raises :class:`BadToken` for any other (forged, cut, another purpose's)."""
    value = verify(secret, PURPOSE, token)
    sid, colon, key = value.partition(":")
    if not colon or not sid.isdigit() or not key:
        raise BadToken("malformed feedback token")
    return int(sid), key


#: A private feed file's placeholder token: ``pdfb~<the key, URL-safe base64>~`` (``~`` is
#: in no token of ours and is left as it is by HTML and XML escaping).
FEED_MARK = "pdfb~"
_PLACEHOLDER = re.compile(rb"pdfb~([A-Za-z0-9_-]*)~")


def feed_links(link: str, key: str) -> tuple[str, str]:
    """The "more like this" and "less like this" URLs of the paper ``key`` in a private
    feed of the site ``link``, with the placeholder token :func:`personalise` replaces."""
    encoded = base64.urlsafe_b64encode(key.encode("utf-8")).rstrip(b"=").decode("ascii")
    base = link.rstrip("/")
    return f"{base}/more?token={FEED_MARK}{encoded}~", f"{base}/less?token={FEED_MARK}{encoded}~"


def personalise(feed: bytes, secret: bytes, subscriber_id: int) -> bytes:
    """``feed`` (a private feed file's bytes) with each placeholder token of
    :func:`feed_links` replaced by ``subscriber_id``'s token for that paper."""
    if FEED_MARK.encode() not in feed:
        return feed
    made: dict[bytes, bytes] = {}

    def token(found: re.Match[bytes]) -> bytes:
        encoded = found.group(1)
        hit = made.get(encoded)
        if hit is None:
            try:
                key = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return found.group(0)  # not one of ours: left as it is
            hit = made[encoded] = feedback_token(secret, subscriber_id, key).encode("ascii")
        return hit

    return _PLACEHOLDER.sub(token, feed)


@dataclass(frozen=True, slots=True)
class FeedbackLinks:
    """Makes one subscriber's feedback links: ``base_url`` of the site, the run's
    ``secret``, the subscriber's id."""

    base_url: str
    secret: bytes
    subscriber_id: int

    def prefix(self, kind: str) -> str:
        """What each URL of ``kind`` ("more" or "less") starts with, before its token."""
        return f"{self.base_url.rstrip('/')}/{kind}?token="

    def token(self, key: str) -> str:
        """The token of both links of the paper ``key``."""
        return feedback_token(self.secret, self.subscriber_id, key)

    def urls(self, key: str) -> tuple[str, str]:
        """The "more like this" and "less like this" URLs of the paper ``key``."""
        token = self.token(key)
        return self.prefix("more") + token, self.prefix("less") + token
