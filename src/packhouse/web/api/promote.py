"""Promotion through the API: `POST /api/v1/repositories/{fmt}/{name}/promote`.

`{name}` is the source; the body names the target and the release. The same service as
`packhouse promote` (`services.promote.promote`) does the work.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from packhouse.services.promote import PromotedFile, Promotion, Release, promote
from packhouse.types import Action, Format
from packhouse.web.api.deps import PrincipalDep, ServicesDep
from packhouse.web.api.models import InputModel
from packhouse.web.api.params import TEXT_LENGTH, RepoEntry, RepoPath

router = APIRouter(tags=["repositories"])


class PromotionCreate(InputModel):
    to: RepoEntry = Field(
        description="The hosted repository (of the same format) to copy to.", examples=["release"]
    )
    name: str = Field(
        min_length=1,
        max_length=TEXT_LENGTH,
        description="The project (PyPI) or package (conda) name.",
        examples=["mypkg"],
    )
    version: str = Field(min_length=1, max_length=TEXT_LENGTH, examples=["1.2.0"])
    subdir: str | None = Field(
        default=None,
        max_length=64,
        description="conda only: promote the files of this subdir alone; default: every subdir.",
        examples=["linux-64"],
    )


class PromotedFileOut(BaseModel):
    filename: str
    sha256: str
    subdir: str | None

    @classmethod
    def of(cls, f: PromotedFile) -> PromotedFileOut:
        return cls(filename=f.filename, sha256=f.sha256, subdir=f.subdir)


class PromotionOut(BaseModel):
    source: str = Field(description="FORMAT/NAME")
    target: str = Field(description="FORMAT/NAME")
    name: str = Field(description="Normalised (PyPI) or the conda package name.")
    version: str
    copied: list[PromotedFileOut]
    skipped: list[PromotedFileOut] = Field(
        description="Already in the target with the same bytes; nothing changed for them."
    )

    @classmethod
    def of(cls, done: Promotion) -> PromotionOut:
        return cls(
            source=done.source,
            target=done.target,
            name=done.project,
            version=done.version,
            copied=[PromotedFileOut.of(f) for f in done.copied],
            skipped=[PromotedFileOut.of(f) for f in done.skipped],
        )


@router.post(
    "/repositories/{fmt}/{name}/promote",
    status_code=status.HTTP_201_CREATED,
    summary="Copy a release to another repository (read here, upload there)",
    description="Copies every live file of the release (same filename and bytes, metadata"
    " and yank state kept) to the hosted repository `to`. 201 when files were copied; 200"
    " when every file was already there with the same bytes; 404 when there is nothing to"
    " promote; 409, with nothing copied, when the target holds another file under one of"
    " the filenames or has deleted one of them.",
    responses={200: {"description": "Every file was already in the target."}},
)
def promote_release(
    fmt: Format,
    name: RepoPath,
    body: PromotionCreate,
    response: Response,
    svc: ServicesDep,
    who: PrincipalDep,
) -> PromotionOut:
    source = svc.catalog.get(fmt, name)
    svc.access.check(who, source, Action.READ)
    target = svc.catalog.get(fmt, body.to)
    svc.access.check(who, target, Action.UPLOAD)
    done = promote(
        svc.ctx, source, target, Release(body.name, body.version, body.subdir), actor=who.name
    )
    if not done.copied:
        response.status_code = status.HTTP_200_OK
    return PromotionOut.of(done)
