"""The server tells ``on_busy`` when the first request starts and the last one ends: the
daemon's event sender waits for such quiet moments (``daemon.events``)."""

from __future__ import annotations

import asyncio

from tests.support.fake_daemon import short_socket_dir

from pymultus.daemon.server import Health, HttpRequest, HttpResponse, HttpServer, daemon_routes


async def _post(sock: str) -> int:
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(b"POST /cni HTTP/1.1\r\nHost: dummy\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(data.split(b" ", 2)[1])


def test_on_busy_marks_the_first_start_and_the_last_end() -> None:
    seen: list[bool] = []

    async def main() -> None:
        release = asyncio.Event()

        async def handle(request: HttpRequest) -> HttpResponse:
            await release.wait()
            return HttpResponse(200, b"{}")

        server = HttpServer(daemon_routes(handle, handle, Health()), on_busy=seen.append)
        with short_socket_dir() as d:
            await server.start_unix(f"{d}/multus.sock")
            try:
                calls = [asyncio.create_task(_post(f"{d}/multus.sock")) for _ in range(3)]
                while server.in_flight < 3:
                    await asyncio.sleep(0.01)
                assert seen == [True]  # three requests in flight: one "busy"
                release.set()
                assert await asyncio.gather(*calls) == [200, 200, 200]
            finally:
                await server.close()

    asyncio.run(main())
    assert seen == [True, False]
