"""`ecowatch deadletter list|show|export|replay|stats|prune`: inspect and re-inject rejected messages.

`replay` publishes the selected dead letters again, on their original topics, to the configured
broker: the running daemon then decodes and validates them with its current registry and config,
exactly as it does live, and the rows are marked replayed. Each message is published once, with
all its readings, including those past `max_rows_per_message` that have no row (`list` shows
them as `+N omitted`). Rows that a database refused (`sink_rejected`) are not messages and are
not replayed. `stats` prints the store's size and its counts by reason, stored or not; `prune`
deletes messages older than a duration now, for a store at its quota that should take new ones
before the retention (`deadletter.max_age`) frees room by itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import orjson
from pydantic import TypeAdapter, ValidationError

from config.times import ns
from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.errors import RejectReason

if TYPE_CHECKING:
    from ingest.app.settings import Settings


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    parser = sub.add_parser(
        "deadletter",
        help="list, show, export and replay rejected messages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("list", "one line per dead letter: id, time, reason, station, parameter, detail"),
        ("export", "every selected dead letter as a JSON line, payload included"),
        ("replay", "re-publish the selected dead letters to the broker on their original topics"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--reason", choices=[r.value for r in RejectReason], help="Only this reason.")
        action.add_argument("--limit", type=int, default=None, help="At most this many.")
        add_config(action)
        if name == "replay":
            action.add_argument(
                "--include-replayed", action="store_true", help="Replay rows replayed before too."
            )
            action.add_argument(
                "--id", dest="ids", type=int, action="append", help="Only this id (repeatable)."
            )
    show = actions.add_parser(
        "show", help="one dead letter in full", description="Print one dead letter in full."
    )
    show.add_argument("id", type=int)
    add_config(show)
    stats = actions.add_parser(
        "stats",
        help="size of the store and rejections counted by reason",
        description="Print the store's size, quota, fill and its counts by reason (stored or not) as JSON.",
    )
    add_config(stats)
    prune = actions.add_parser(
        "prune",
        help="delete dead letters older than a duration",
        description="Delete the messages received longer ago than OLDER_THAN, with their rows (counts stay).",
    )
    prune.add_argument(
        "--older-than", required=True, type=_duration, help="ISO 8601 duration, e.g. P7D or PT12H."
    )
    add_config(prune)


def run(args: argparse.Namespace) -> int:
    from ingest.app.settings import load_settings

    settings = load_settings(args.config)
    store = DeadLetterStore(settings.data_dir / "deadletter.db", settings.deadletter)
    try:
        if args.action == "show":
            letter = store.get(args.id)
            if letter is None:
                print(f"ecowatch: no dead letter {args.id}", file=sys.stderr)
                return 1
            print(orjson.dumps(letter.to_json(), option=orjson.OPT_INDENT_2).decode())
            return 0
        if args.action == "stats":
            doc = {**store.status(), "rejections": store.counts_by_reason()}
            print(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
            return 0
        if args.action == "prune":
            messages, rows = store.delete_before(time.time_ns() - ns(args.older_than))
            store.compact()
            print(f"deleted {messages} messages ({rows} dead letters)")
            return 0
        include = args.action != "replay" or args.include_replayed
        letters = _select(store, args.reason, args.limit, include, getattr(args, "ids", None))
        if args.action == "list":
            for d in letters:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d.received_ns / 1e9))
                omitted = f"\t+{d.omitted} omitted" if d.omitted else ""
                print(
                    f"{d.id}\t{when}\t{d.reason}\t{d.station_id or '-'}\t{d.parameter or '-'}\t{d.detail}"
                    + omitted
                )
        elif args.action == "export":
            for d in letters:
                sys.stdout.write(orjson.dumps(d.to_json()).decode() + "\n")
        else:
            return _replay(settings, store, letters)
        return 0
    finally:
        store.close()


def _duration(text: str) -> timedelta:
    try:
        return TypeAdapter(timedelta).validate_python(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try P7D or PT12H)") from exc


def _select(
    store: DeadLetterStore,
    reason: str | None,
    limit: int | None,
    include_replayed: bool,
    ids: list[int] | None,
) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    for letter in store.iter_all(reason=reason, include_replayed=include_replayed):
        if ids and letter.id not in ids:
            continue
        out.append(letter)
        if limit is not None and len(out) >= limit:
            break
    return out


def _replay(settings: Settings, store: DeadLetterStore, letters: list[DeadLetter]) -> int:
    from ingest.mqtt import PublisherConfig, WindowedPublisher

    replayable = [d for d in letters if d.reason != RejectReason.SINK_REJECTED]
    skipped = len(letters) - len(replayable)
    # The same raw message may have several rows (one per rejected reading): publish it once.
    unique: dict[int | None, tuple[str, bytes, list[int]]] = {}
    for d in replayable:
        unique.setdefault(d.message_id, (d.topic, d.payload, []))[2].append(d.id or 0)
    # The daemon's broker, as it connects (transport, TLS, user), under a client id of its own.
    config = PublisherConfig.to(settings.mqtt, client_id=_replay_client_id(settings.mqtt.client_id), qos=1)
    try:
        with WindowedPublisher(config) as publisher:
            for topic, payload, _ids in unique.values():
                publisher.publish(topic, payload)
            publisher.flush(timeout=60)
    except (ConnectionError, OSError) as exc:
        print(f"ecowatch: cannot replay: {exc}", file=sys.stderr)
        return 2
    if publisher.failed:
        print(
            f"ecowatch: {publisher.failed} messages were not acknowledged; none marked replayed",
            file=sys.stderr,
        )
        return 1
    store.mark_replayed([i for _topic, _payload, ids in unique.values() for i in ids], time.time_ns())
    print(
        f"replayed {len(unique)} messages ({len(replayable)} dead letters); skipped {skipped} sink rejections"
    )
    return 0


def _replay_client_id(daemon_client_id: str) -> str:
    """`<daemon's id>-replay`, within the 64 characters a client id may have."""
    suffix = "-replay"
    return daemon_client_id[: 64 - len(suffix)] + suffix
