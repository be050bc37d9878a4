"""A Zipkin collector stand-in for the benchmark: accepts span batches (POST /api/v2/spans) and
counts them. The services export their sampled spans exactly as in production (JSON v2 over
HTTP); what the collector does with them is not what the benchmark measures."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass


@dataclass
class SpanSink:
    server: asyncio.Server | None = None
    port: int = 0
    posts: int = 0
    spans: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2/spans"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                self.posts += 1
                with contextlib.suppress(ValueError):
                    spans = json.loads(body)
                    self.spans += len(spans) if isinstance(spans, list) else 0
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
