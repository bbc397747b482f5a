"""A bot process that only runs the outbox worker — the crash test starts it, SIGKILLs it, restarts it.

    python -m tests.outbox_runner --db URL --api-base http://127.0.0.1:PORT [--schema S] [--batch-size N]
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from bot.adapters.wecom_webhook import WeComWebhookDeliverer
from bot.delivery import DeliverersByKind
from bot.outbox import OutboxWorker
from storage.database import Database
from storage.engine import create_engine


async def run(args: argparse.Namespace) -> None:
    kwargs = {"connect_args": {"server_settings": {"search_path": args.schema}}} if args.schema else {}
    db = Database(create_engine(args.db, **kwargs))
    async with aiohttp.ClientSession() as session:
        deliverer = WeComWebhookDeliverer(session, api_base=args.api_base)
        worker = OutboxWorker(
            db,
            {"wecom": DeliverersByKind("wecom", {"webhook": deliverer})},  # type: ignore[dict-item]
            batch_size=args.batch_size,
            per_destination=args.per_destination,
            lease_seconds=args.lease,
            poll_interval=0.2,
        )
        await worker.start()
        print("ready", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--per-destination", type=int, default=5)
    parser.add_argument("--lease", type=float, default=2.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
