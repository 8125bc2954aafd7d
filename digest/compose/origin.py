"""Where a paper came from and where its links go, the same in emails, the archive and the
feeds: its own page, its Hugging Face page (only when it is on Hugging Face), its arXiv
primary category and the names of the sources that listed it.

Pure. Links are returned only when they are safe absolute http(s) URLs; text is left for
the caller to clean (emails and feeds clean it their own way).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from digest.compose.text import safe_url
from digest.models import Paper

#: An arXiv category: an archive (``cs``, ``hep-th``, ``astro-ph``) and maybe a subject class
#: (``cs.LG``, ``math.AP``, ``astro-ph.CO``, ``q-bio.NC``). A feed's tags ("ML",
#: "machine learning") are not.
_ARXIV_CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]{2,}(?:-[A-Za-z]+)?)?")
#: The scheme arXiv itself gives its categories in Atom (``<category scheme=…>``).
ARXIV_SCHEME = "http://arxiv.org/schemas/atom"


def _hugging_face_host(url: str | None) -> bool:
    try:
        host = urlsplit(url or "").hostname or ""
    except ValueError:
        return False
    return host == "huggingface.co" or host.endswith(".huggingface.co")


def on_hugging_face(paper: Paper) -> bool:
    """Whether the paper is on Hugging Face's daily papers (so its page there exists): its
    own link or thumbnail is there, it has upvotes, or it is a record from before papers
    carried their link and sources (Hugging Face was then the only source)."""
    if paper.arxiv_id is None:
        return False
    if _hugging_face_host(paper.link) or _hugging_face_host(paper.thumbnail) or paper.upvotes:
        return True
    return paper.link is None and not paper.sources


def hf_url(paper: Paper) -> str | None:
    """The paper's Hugging Face page, when it is on Hugging Face (see :func:`on_hugging_face`)."""
    return safe_url(paper.hf_url) if on_hugging_face(paper) else None


def page_url(paper: Paper) -> str | None:
    """The paper's own page: the link its source gave (Hugging Face's page, arXiv's abstract
    page, a feed entry's page), else its Hugging Face page, else its arXiv abstract page,
    else its project page, else its code; None when none is a safe link."""
    for url in (paper.link, hf_url(paper), paper.abs_url, paper.project_page, paper.github_repo):
        if found := safe_url(url):
            return found
    return None


def is_arxiv_category(term: str) -> bool:
    """``cs.LG``, ``hep-th``, ``astro-ph.CO``: yes; ``ML``, ``machine learning``: no."""
    return _ARXIV_CATEGORY.fullmatch(term) is not None


def arxiv_category(paper: Paper) -> str | None:
    """The paper's arXiv primary category (``cs.LG``), for an arXiv paper whose first
    category is one; else None (a feed entry's first tag is not an arXiv category)."""
    primary = paper.primary_category
    if paper.arxiv_id is None or primary is None or not is_arxiv_category(primary.strip()):
        return None
    return primary.strip()
