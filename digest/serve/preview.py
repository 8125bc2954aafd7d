"""The subscribe page's live preview: what a query would have brought, as JSON."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digest.compose import paper_view
from digest.errors import QueryError
from digest.run import Previewer
from digest.serve.forms import MAX_QUERIES, lines, unsafe_character
from digest.serve.limits import RateLimiter
from digest.serve.pages import Handlers, Site


class Preview(Handlers):
    """The preview route, rate limited per client address."""

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self.previewer = Previewer(site.store)
        self.preview_limit = RateLimiter(120, window=60, name="preview", events=site.store.limits)

    async def preview(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = await asyncio.to_thread(self.preview_limit.allow, client)  # a transaction
        if wait:
            return JSONResponse(
                {"error": "too many previews; wait a little"},
                429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        params = request.query_params
        keywords = lines(params.get("keywords", ""))[:MAX_QUERIES]
        exclude = lines(params.get("exclude", ""))[:MAX_QUERIES]
        for n, query in enumerate((*keywords, *exclude), 1):
            problem = unsafe_character(query, allowed="\t")
            if problem:  # as the form will say
                return JSONResponse({"error": f"query {n} holds {problem}"}, 400)
        try:
            days = max(1, min(7, int(params.get("days", "1"))))
        except ValueError:
            days = 1
        try:
            found = await asyncio.to_thread(self.previewer.preview, keywords, exclude, days)
        except QueryError as exc:
            return JSONResponse({"error": f"{exc.reason} (at character {exc.position + 1})"}, 400)
        return JSONResponse(
            {
                "days": [
                    {
                        "date": d.day.isoformat(),
                        "total": d.total,
                        "count": len(d.matches),
                        "papers": [
                            {
                                "title": m.paper.title[:300],
                                "url": paper_view(m).url,
                                "terms": list(m.terms),
                            }
                            for m in d.matches[:10]
                        ],
                    }
                    for d in found
                ]
            },
            headers={"Cache-Control": "no-store"},
        )
