"""Namespace listing: order, direction and pages, as the REST API pages them.

Theory of operation: namespaces are few (at most 1000), so a page is cut from
the full, sorted list. A page past the end is empty — the Python SDK keeps
asking for the next page until it gets an empty one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgekv.core import limits
from edgekv.core.errors import ErrorKind, error
from edgekv.core.model import Namespace


@dataclass(frozen=True, slots=True)
class NamespacePage:
    namespaces: list[Namespace]
    total_count: int


def page_namespaces(
    namespaces: Iterable[Namespace],
    page: int,
    per_page: int,
    order_by_title: bool,
    descending: bool,
) -> NamespacePage:
    page = page or 1
    per_page = per_page or limits.DEFAULT_NAMESPACES_PER_PAGE
    if page < 1:
        raise error(ErrorKind.PAGE_INVALID, field="page", value=page, detail="pages start at 1")
    if not 1 <= per_page <= limits.MAX_NAMESPACES_PER_PAGE:
        raise error(
            ErrorKind.PAGE_INVALID,
            field="per_page",
            value=per_page,
            detail=f"it must be between 1 and {limits.MAX_NAMESPACES_PER_PAGE}",
        )
    ordered = sorted(
        namespaces,
        key=(lambda ns: (ns.title, ns.id)) if order_by_title else (lambda ns: (ns.id, ns.title)),
        reverse=descending,
    )
    start = (page - 1) * per_page
    return NamespacePage(ordered[start : start + per_page], total_count=len(ordered))
