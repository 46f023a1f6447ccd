"""Bounds on what the management API takes in its paths, queries and bodies.

Every number has a range (SQL integers are 64-bit: a larger id is refused with 422, not an
overflow) and every name a length, so hostile input is answered 422 before it reaches a
service.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

MAX_ID = 2**63 - 1
# user and group names (services/accounts.py allows 100 characters), principals
NAME_LENGTH = 100
# repository names (64 characters, types.repo_name) with an optional FORMAT/ prefix
REPO_LENGTH = 100
# project names, journal actions and the like
TEXT_LENGTH = 200
DESCRIPTION_LENGTH = 2000
MAX_ENTRIES = 100

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="From `GET /tokens`.")]
UserPath = Annotated[str, Path(min_length=1, max_length=NAME_LENGTH)]
GroupPath = Annotated[str, Path(min_length=1, max_length=NAME_LENGTH)]
RepoPath = Annotated[str, Path(min_length=1, max_length=REPO_LENGTH)]
PrincipalPath = Annotated[str, Path(min_length=1, max_length=NAME_LENGTH)]
Serial = Annotated[int, Query(ge=0, le=MAX_ID, description="Only serials above this.")]

# in bodies
Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH)]
RepoEntry = Annotated[str, Field(min_length=1, max_length=REPO_LENGTH)]
