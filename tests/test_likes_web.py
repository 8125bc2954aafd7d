"""Likes are a subscriber's data: "delete my data" on the manage page deletes them too (the
``likes`` rows refer to the subscriber's row: left behind, they would keep it from going)."""

from __future__ import annotations

import pytest

from digest.store.like_rows import LikeEntry
from tests.test_web import OPERATOR_SUBSCRIBER, App, active, app

__all__ = ["app"]  # the site fixture of tests/test_web.py


async def test_delete_my_data_deletes_the_likes_and_the_subscriber(app: App) -> None:
    ada = await active(app, "ada@example.org")
    bo = await active(app, "bo@example.org")
    assert ada.id is not None and bo.id is not None
    for sub_id in (ada.id, bo.id):
        counts = app.store.likes.add(
            sub_id, [LikeEntry("2611.00001"), LikeEntry("10.1000/later")], "like", "cli"
        )
        assert counts.added == 2
    app.store.likes.add(ada.id, [LikeEntry("2611.00002")], "dislike", "email")
    asked = await app.act(ada, "delete")
    done = await app.act(ada, "delete-confirmed", asked.text)
    assert done.status_code == 200 and "Your data is deleted" in done.text
    assert app.store.members.subscriber("ada@example.org") is None
    assert app.store.likes.of(ada.id) == []
    assert len(app.store.likes.of(bo.id)) == 2  # only hers


@pytest.mark.parametrize("app", [OPERATOR_SUBSCRIBER], indirect=True)
async def test_a_config_subscriber_who_deletes_their_data_loses_their_likes(app: App) -> None:
    op = app.store.members.subscriber("op@example.org")
    assert op is not None and op.id is not None
    app.store.likes.add(op.id, [LikeEntry("2611.00001")], "like", "web")
    asked = await app.act(op, "delete")
    await app.act(op, "delete-confirmed", asked.text)
    assert app.store.likes.of(op.id) == []
