"""The "more like this" and "less like this" links of each paper in a subscriber's email.

Both links of a paper carry one signed token of (subscriber id, paper key), made with the
run's secret for the purpose ``feedback`` (:mod:`digest.compose.tokens`): it cannot be
forged, nor moved to another paper or subscriber, nor used as an unsubscribe or manage
token (nor they as it). The links lead to ``/more`` and ``/less`` of ``digest serve``,
where a GET shows one button and only its POST records anything (mail scanners prefetch
links). Tokens do not expire: like an unsubscribe link, an old email's link keeps working.

Pure: no I/O.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class FeedbackLinks:
    """Makes one subscriber's feedback links: ``base_url`` of the site, the run's
    ``secret``, the subscriber's id."""

    base_url: str
    secret: bytes
    subscriber_id: int

    def urls(self, key: str) -> tuple[str, str]:
        """The "more like this" and "less like this" URLs of the paper ``key``."""
        token = feedback_token(self.secret, self.subscriber_id, key)
        base = self.base_url.rstrip("/")
        return f"{base}/more?token={token}", f"{base}/less?token={token}"
