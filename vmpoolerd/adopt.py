"""
``python -m vmpoolerd.adopt --config PATH [--release]``: end a doubt about
Redis's state (Note [Redis generations] in vmpoolerd/store/generation.py).

Without ``--release``, every VM held in a pool's discovered set becomes
running, checked out now (to the owner its hash still names, else to
nobody: Note [Adopted owners] in store/lua/adopt.lua): whoever may be using
it keeps it for its lifetime, and the pool manager reclaims it then.  With ``--release``,
the held VMs are left to the pool manager, which destroys them a few per
cycle.  Prints what it did; exits 0, or 1 with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime

from .config import Config, ConfigError, find_source, load_config
from .store.connection import connect
from .store.generation import GenerationStore
from .timefmt import format_time

TIMEOUT = 10.0  # seconds for each Redis call


async def run(reactor: IReactorTime, config: Config, release: bool) -> str:
    redis = connect(config.redis, TIMEOUT)
    try:
        store = GenerationStore(redis, reactor, timeout=TIMEOUT)
        doubt = await store.doubt()
        before = f"doubt ended ({doubt or 'there was none'})"
        if release:
            await store.release_held()
            return f"{before}; held VMs are left to be destroyed"
        adopted = await store.adopt(config.pool_names, format_time(reactor.seconds()))
        return f"{before}; {adopted} held VMs adopted as running"
    finally:
        await redis.disconnect()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmpoolerd.adopt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="default: $VMPOOLER_CONFIG (the YAML text), else "
                        "$VMPOOLER_CONFIG_FILE, else etc/vmpooler.yaml")
    parser.add_argument("--release", action="store_true",
                        help="leave the held VMs to be destroyed instead of adopting them")
    args = parser.parse_args(argv)
    source = find_source(args.config, os.environ)
    try:
        config = load_config(source, os.environ)
    except ConfigError as e:
        print(f"{source.label}: {e}", file=sys.stderr)
        return 1
    said: list[tuple[bool, str]] = []

    async def go(reactor: IReactorTime) -> None:
        try:
            said.append((True, await run(reactor, config, args.release)))
        except Exception as e:
            said.append((False, f"nothing done: {e}"))

    try:
        task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
    except SystemExit:  # react always exits; what was said decides
        pass
    ok, message = said[0] if said else (False, "nothing done")
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
