"""OrthancClient: every failure of a call is an OrthancRestError, no partial file is left."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orthanc_plugin.client import OrthancClient
from orthanc_plugin.errors import OrthancRestError


def _client(handler: httpx.MockTransport) -> OrthancClient:
    client = OrthancClient("http://127.0.0.1:8042", "ctnode", "secret")
    client._http.close()
    client._http = httpx.Client(base_url=client.base_url, transport=handler)
    return client


def test_download_writes_the_file_atomically(tmp_path: Path) -> None:
    body = b"\0" * 128 + b"DICM" + b"x" * 1000
    with _client(httpx.MockTransport(lambda request: httpx.Response(200, content=body))) as c:
        dest = c.download_instance("abc", tmp_path / "abc.dcm")
    assert dest.read_bytes() == body and list(tmp_path.iterdir()) == [dest]


def test_download_transport_error_is_a_rest_error_and_leaves_nothing(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with _client(httpx.MockTransport(refuse)) as c, pytest.raises(OrthancRestError) as info:
        c.download_instance("abc", tmp_path / "abc.dcm")
    assert info.value.status is None and "ConnectError" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_not_found_keeps_its_status(tmp_path: Path) -> None:
    with _client(httpx.MockTransport(lambda request: httpx.Response(404))) as c, \
            pytest.raises(OrthancRestError) as info:
        c.download_instance("abc", tmp_path / "abc.dcm")
    assert info.value.status == 404 and list(tmp_path.iterdir()) == []


def test_download_cut_mid_file_leaves_no_partial_file(tmp_path: Path) -> None:
    class CutStream(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b"\0" * 132
            raise httpx.ReadError("connection reset")

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=CutStream()))
    with _client(transport) as c, pytest.raises(OrthancRestError, match="ReadError"):
        c.download_instance("abc", tmp_path / "abc.dcm")
    assert list(tmp_path.iterdir()) == []
