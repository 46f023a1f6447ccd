"""The process's download counter (services/downloads.py), made on first use, and the rule
for what counts: a GET of a hosted file's bytes from the start (not a HEAD, not a
`.metadata` file, not a later part of a resumed download)."""

from __future__ import annotations

from starlette.requests import Request

from packhouse.services.downloads import DownloadCounter
from packhouse.web.deps import services


def counter(request: Request) -> DownloadCounter:
    found: DownloadCounter | None = getattr(request.app.state, "downloads", None)
    if found is None:
        found = request.app.state.downloads = DownloadCounter(services(request).ctx)
    return found


def count_download(request: Request, artifact_id: int) -> None:
    if request.method != "GET":
        return
    ranged = request.headers.get("range", "")
    if ranged and not ranged.replace(" ", "").lower().startswith("bytes=0-"):
        return
    counter(request).count(artifact_id)
