"""Stream the ``file`` field of a multipart/form-data body straight to one file.

Starlette's form parser spools every upload to a temporary file in the
system's temp folder before the endpoint runs, which the endpoint then
copies: two copies on disk, one outside the node's folder. Here
python-multipart's streaming parser writes the file part once, into the
request's own folder, counting it against the upload limit as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

FIELD = "file"
BAD_FORM = ("the request must be multipart/form-data with the study in a field named 'file'"
            " (problem with: {what})")


class FormRejected(Exception):
    """The body is not a usable form, or the file is too large; ``code``/``status`` say how."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    path: Path
    size: int
    filename: str


class _FilePart:
    """Callbacks of the parser: collects part headers, writes the first ``file`` part."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.size = 0
        self.filename = ""
        self.found = False
        self._out: IO[bytes] | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._writing = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._writing = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == FIELD.encode() and not self.found:
            self.found = self._writing = True
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self._out = self.dest.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing or self._out is None:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise FormRejected("", "upload_too_large", 413)
        self._out.write(data[start:end])

    def _part_end(self) -> None:
        self._writing = False

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive_file(request: Request, dest: Path, max_bytes: int) -> ReceivedFile:
    """Write the body's ``file`` field to ``dest``; raise FormRejected when it cannot."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise FormRejected(BAD_FORM.format(what="body"), "bad_request", 422)
    part = _FilePart(dest, max_bytes)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise FormRejected(BAD_FORM.format(what=f"malformed multipart body: {exc}"),
                           "bad_request", 422) from exc
    except ClientDisconnect:
        raise FormRejected("the client disconnected during the upload", "client_disconnect",
                           400) from None
    finally:
        part.close()
    if not part.found:
        raise FormRejected(BAD_FORM.format(what="file"), "bad_request", 422)
    return ReceivedFile(dest, part.size, part.filename)
