"""Streaming multipart/form-data: fields into memory (capped), the file part straight into
an IncomingFile that hashes and enforces the size limit while the bytes arrive.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from packhouse.errors import InvalidUpload, StorageFull, TooLarge
from packhouse.services import streamed_checks
from packhouse.storage.base import IncomingFile

MAX_FIELDS_BYTES = 16 * 1024 * 1024  # long descriptions are sent as a field
MAX_FIELDS = 1000
UPLOAD_SLACK = 1024 * 1024  # room for a form's other fields around its file
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
log = logging.getLogger("packhouse.web")


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    file: IncomingFile | None = None
    # the file part's own headers, names lowercased (prefix.dev's API sends x-file-sha256)
    file_headers: dict[str, str] = field(default_factory=dict)
    # names of the fields sent more than once (`fields` holds the first value): whoever reads
    # the form refuses those that must be single
    repeated: set[str] = field(default_factory=set)

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()


class _State:
    def __init__(self, tmp_dir: Path, max_file_bytes: int, file_field: str) -> None:
        self.form = ParsedForm()
        self.tmp_dir = tmp_dir
        self.max_file_bytes = max_file_bytes
        self.file_field = file_field
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.is_file = False
        self.sink: IncomingFile | None = None
        self.buffer = bytearray()
        self.field_bytes = 0
        self.field_count = 0
        self.ended = False

    def on_part_begin(self) -> None:
        self.headers = {}
        self.name = None
        self.is_file = False
        self.sink = None
        self.buffer = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidUpload("a multipart part has no name in its Content-Disposition")
        self.name = raw_name.decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self.is_file = raw_filename is not None
        if self.is_file and self.name == self.file_field:
            if self.form.file is not None:
                raise InvalidUpload(f"the form has more than one '{self.file_field}' file")
            assert raw_filename is not None
            self.form.filename = raw_filename.decode("utf-8", "replace")
            self.form.file_headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers.items()
            }
            self.sink = IncomingFile(self.tmp_dir, self.max_file_bytes, "uploaded file")
            self.form.file = self.sink
            streamed_checks.start(self.sink, self.form.filename)
        else:
            self.field_count += 1
            if self.field_count > MAX_FIELDS:
                raise InvalidUpload(f"the form has more than {MAX_FIELDS} fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.sink is not None:
            self.sink.write(data[start:end])
        elif not self.is_file:
            self.field_bytes += end - start
            if self.field_bytes > MAX_FIELDS_BYTES:
                raise TooLarge(f"the form's fields are larger than {MAX_FIELDS_BYTES} bytes")
            self.buffer += data[start:end]
        # Other file parts (a detached signature, say) are read past and dropped.

    def on_part_end(self) -> None:
        if self.sink is not None:
            self.sink.finish()
        elif not self.is_file and self.name is not None:
            # The first value is kept; the legacy API repeats only lists such as
            # classifiers (read from the file itself), and a repeated single-valued field
            # is refused by the service that reads the form.
            if self.name in self.form.fields:
                self.form.repeated.add(self.name)
            else:
                self.form.fields[self.name] = self.buffer.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.ended = True


async def parse_form(
    content_type: str,
    chunks: AsyncIterator[bytes],
    tmp_dir: Path,
    max_file_bytes: int,
    file_field: str = "content",
) -> ParsedForm:
    """Parse a multipart body; on any error the partial file is removed and nothing kept."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise InvalidUpload(
            f"the upload must be multipart/form-data, not {kind.decode('latin-1') or 'empty'}"
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidUpload("the multipart Content-Type has no boundary")
    state = _State(tmp_dir, max_file_bytes, file_field)
    callbacks = {
        name: getattr(state, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    # Everything a form may hold: the file, the fields, and room for part headers and parts
    # that are read past (a detached signature); a body (chunked, say) beyond that is refused.
    max_body = max_file_bytes + MAX_FIELDS_BYTES + UPLOAD_SLACK
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_body:
                raise TooLarge(
                    f"the upload is larger than the limit of {max_file_bytes} bytes"
                    " (max_upload_bytes) and its form fields"
                )
            parser.write(chunk)
        parser.finalize()
        if not state.ended:
            raise InvalidUpload(
                "the upload was cut short: the body ended before the multipart closing boundary"
            )
    except MultipartParseError as exc:
        state.form.discard()
        raise InvalidUpload(f"the multipart body is malformed: {exc}") from None
    except OSError as exc:
        state.form.discard()
        if exc.errno in NO_SPACE_ERRNOS:
            log.warning("no space left receiving an upload into %s: %s", tmp_dir, exc)
            raise StorageFull() from None
        raise
    except BaseException:
        state.form.discard()
        raise
    return state.form
