"""Conda packages through the API: `POST /api/v1/repositories/conda/{name}/packages`.

The multipart form is streamed by the same code as `POST /conda/<repo>/upload` and the
package stored by the same service (`services.conda_uploads.upload_conda`); only the answer
differs: JSON here, text there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from packhouse.services.conda_uploads import CondaUploadOutcome, upload_conda
from packhouse.types import Action, Format
from packhouse.web.api.deps import PrincipalDep, ServicesDep
from packhouse.web.routes.conda import read_upload_form

router = APIRouter(tags=["conda"])


class CondaPackageOut(BaseModel):
    filename: str
    subdir: str
    name: str
    version: str
    sha256: str
    created: bool = Field(
        description="False: the identical file was already there and nothing changed."
    )

    @classmethod
    def of(cls, outcome: CondaUploadOutcome) -> CondaPackageOut:
        return cls(
            filename=outcome.filename,
            subdir=outcome.subdir,
            name=outcome.name,
            version=outcome.version,
            sha256=outcome.sha256,
            created=outcome.created,
        )


_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The package: <name>-<version>-<build>.conda"
                            " or .tar.bz2.",
                        },
                        "subdir": {
                            "type": "string",
                            "description": "Where it goes; default: the subdir its"
                            " info/index.json names.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/repositories/conda/{name}/packages",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a conda package (needs upload)",
    description="A multipart form with the package in `file` and, optionally, `subdir`."
    " 201 when stored; 200 when the identical file was already there; 409 when a file of"
    " that name holds different bytes. The package is in repodata when this returns.",
    responses={200: {"description": "The identical file was already in the channel."}},
    openapi_extra=_FORM,
)
async def upload_package(
    name: str, request: Request, response: Response, svc: ServicesDep, who: PrincipalDep
) -> CondaPackageOut:
    repo = svc.catalog.get(Format.CONDA, name)
    svc.access.check(who, repo, Action.UPLOAD)
    filename, incoming, subdir = await read_upload_form(request)
    try:
        outcome = await run_in_threadpool(
            upload_conda, svc.ctx, repo, who, filename, incoming, subdir
        )
    finally:
        incoming.discard()
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return CondaPackageOut.of(outcome)
