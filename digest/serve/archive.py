"""The archive: the stored listing dates, and every paper of one date."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response

from digest.compose import paper_view
from digest.models import Match
from digest.serve.pages import Handlers


class Archive(Handlers):
    """The archive pages."""

    async def archive_index(self, request: Request) -> Response:
        days = self.store.papers.recent_dates(90)
        return self.site.page("archive_index", days=days)

    async def archive_day(self, request: Request) -> Response:
        try:
            day = date.fromisoformat(request.path_params["day"])
        except ValueError:
            return self.site.not_found()
        listing = self.store.papers.listing(day)
        if listing is None:
            return self.site.message(
                "No listing for this date",
                f"Nothing was fetched for {day.isoformat()}.",
                404,
                action_url="/archive/",
                action_text="All dates",
            )
        views = [paper_view(Match(p, 0.0)) for p in listing.papers]
        newer = [d for d in self.store.papers.recent_dates(90) if d > day]
        older = [d for d in self.store.papers.recent_dates(90) if d < day]
        return self.site.page(
            "archive_day",
            day=day,
            papers=views,
            newer=min(newer) if newer else None,
            older=max(older) if older else None,
        )
