"""Error answers as pages, for people (web/errors.py chooses them by the Accept header)."""

from __future__ import annotations

from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from packhouse.web.ui.state import renderer


def error_page(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    session = request.scope.get("packhouse.ui_session")  # known if a page looked it up
    context = {
        "status": status,
        "reason": reason,
        "message": message,
        "signed_in": session is not None,
        "who": session.principal if session is not None else None,
        "csrf": session.session.csrf if session is not None else "",
        "q": "",
    }
    response = renderer(request).page(request, "error.html", context, status, headers)
    response.headers["Cache-Control"] = "no-store"
    return response
