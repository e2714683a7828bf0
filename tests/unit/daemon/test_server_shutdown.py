"""Once shutdown began, the daemon refuses new ``/cni`` and ``/delegate`` calls with 503 and runs
nothing for them, while calls already running finish: the shim sends ``/cni`` without probing
``/readyz`` first and waits for the next daemon on a 503."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from tests.support.fake_daemon import short_socket_dir

from pymultus.daemon.server import Health, HttpRequest, HttpResponse, HttpServer, daemon_routes

Scenario = Callable[[str, Health, list[str], asyncio.Event], Awaitable[None]]


async def _post(sock: str, path: str, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: (status, headers, body)."""
    reader, writer = await asyncio.open_unix_connection(sock)
    head = f"POST {path} HTTP/1.1\r\nHost: dummy\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, payload


def _run(scenario: Scenario) -> list[str]:
    """Serve daemon routes whose handlers record their calls (and wait for ``release``);
    run ``scenario``; the calls the handlers saw."""
    ran: list[str] = []

    async def main() -> None:
        release = asyncio.Event()
        release.set()

        def handler(name: str) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
            async def handle(request: HttpRequest) -> HttpResponse:
                ran.append(name)
                await release.wait()
                return HttpResponse(200, b"{}")

            return handle

        health = Health()
        server = HttpServer(daemon_routes(handler("cni"), handler("delegate"), health))
        with short_socket_dir() as d:
            await server.start_unix(f"{d}/multus.sock")
            try:
                await asyncio.wait_for(scenario(f"{d}/multus.sock", health, ran, release), 10)
            finally:
                await server.close()

    asyncio.run(main())
    return ran


@pytest.mark.parametrize("path", ["/cni", "/delegate"])
def test_a_call_after_shutdown_began_gets_503_and_runs_nothing(path: str) -> None:
    async def scenario(sock: str, health: Health, ran: list[str], _: asyncio.Event) -> None:
        assert (await _post(sock, path))[0] == 200  # served while running
        health.shutting_down = True
        status, headers, body = await _post(sock, path)
        assert status == 503
        assert json.loads(body) == {"code": 11, "msg": "multus-daemon is shutting down"}
        assert body.endswith(b"}\n")  # http.Error's shape, like every other daemon error
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert (await _post(sock, "/readyz", b"null"))[0] == 500
        assert (await _post(sock, "/healthz", b"null"))[0] == 200

    assert _run(scenario) == [path.strip("/")]  # only the call before the shutdown ran


def test_a_call_already_running_when_shutdown_begins_finishes() -> None:
    async def scenario(sock: str, health: Health, ran: list[str], release: asyncio.Event) -> None:
        release.clear()
        running = asyncio.create_task(_post(sock, "/cni"))
        while not ran:  # the handler has started
            await asyncio.sleep(0.01)
        health.shutting_down = True
        assert (await _post(sock, "/cni"))[0] == 503
        release.set()
        assert (await running)[:1] == (200,)

    assert _run(scenario) == ["cni"]
