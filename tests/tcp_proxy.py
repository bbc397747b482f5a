"""A loopback TCP forwarder between the bot and PostgreSQL, to take the database away (and bring it
back) under a running bot."""

from __future__ import annotations

import asyncio

from storage.database import Database


class TcpProxy:
    """A loopback TCP forwarder we can cut, to take the database away from a running bot."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        """Listen (again, when `port` is the one it had) and return the port."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port: int = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def drop_connections(self) -> None:
        """Close every open connection but keep accepting new ones (a restart, a firewall timeout)."""
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        await asyncio.sleep(0.05)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def proxied_database(pg_url: str, schema: str) -> tuple[TcpProxy, Database]:
    """A Database that reaches PostgreSQL (in the test run's `schema`) through a TcpProxy the test can cut."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    db = Database.from_url(proxied, connect_args={"server_settings": {"search_path": schema}, "timeout": 2})
    return proxy, db
