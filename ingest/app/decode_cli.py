"""`ecowatch decode`: what ecowatch makes of raw payloads, one JSON object per line.

Reads one message per line (or, for JSON and SenML, one whole document when the input does not
parse line by line), decodes and validates it as the daemon would, and prints each reading
(station_id, ts in RFC 3339 UTC, parameter, value in the canonical unit, unit, flag) or each
rejection with its reason. With `--config`, stations resolve through the configured registry;
without, station ids and HJ 212 MNs are reported as given. Exit 0 when everything decoded, 1 when
anything was rejected.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from config.parameters import default_catalogue
from config.registry import Registry
from ingest.decoders import DECODERS
from ingest.errors import RejectedPayload
from ingest.model import ItemRejection
from ingest.validate import ValidationConfig, Validator


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    parser = sub.add_parser(
        "decode",
        help="decode raw payloads and print the readings or rejections",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", choices=sorted(DECODERS), required=True, help="Payload format.")
    parser.add_argument("--topic", default="", help="Topic the payloads arrived on (default: none).")
    parser.add_argument("file", nargs="?", default="-", help="Input file, or - for standard input.")
    add_config(parser)


def _messages(stream: IO[bytes], fmt: str) -> Iterator[bytes]:
    data = stream.read()
    lines = [line for line in data.splitlines() if line.strip()]
    if fmt in ("json", "senml") and len(lines) > 1:
        try:
            orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            # A pretty-printed document rather than one message per line.
            yield data
            return
    if fmt == "hj212":
        # Packets end with CRLF; keep it so the framing check sees the packet as sent.
        yield from (
            line if line.endswith(b"\r\n") else line.rstrip(b"\r") + b"\r\n"
            for line in data.splitlines(keepends=True)
            if line.strip()
        )
        return
    yield from lines


def run(args: argparse.Namespace) -> int:
    if args.config is not None:
        from ingest.app.settings import load_settings

        settings = load_settings(args.config)
        validator = Validator(settings.validation, Registry.load(settings.registry), default_catalogue())
    else:
        validator = Validator(
            ValidationConfig(unknown_stations="accept"), Registry.empty(), default_catalogue()
        )
    decoder = DECODERS[args.format]()
    stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    rejected = False
    with stream:
        for payload in _messages(stream, args.format):
            for line in _decode_one(decoder, validator, args.topic, payload):
                rejected = rejected or "reason" in line
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
    return 1 if rejected else 0


def _decode_one(
    decoder: object, validator: Validator, topic: str, payload: bytes
) -> Iterator[dict[str, object]]:
    try:
        decoded = decoder.decode(topic, payload)  # type: ignore[attr-defined]
    except RejectedPayload as exc:
        yield {"reason": str(exc.reason), "detail": exc.detail}
        return
    for rejection in decoded.rejections:
        yield _rejection(rejection)
    now_ns = time.time_ns()
    for raw in decoded.readings:
        result = validator.validate(raw, {}, now_ns)
        if isinstance(result, ItemRejection):
            yield _rejection(result)
            continue
        ts = datetime.fromtimestamp(result.time_ns // 1_000_000_000, tz=UTC).replace(
            microsecond=(result.time_ns % 1_000_000_000) // 1000
        )
        yield {
            "station_id": result.station_id,
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "parameter": result.parameter,
            "value": result.value,
            "unit": result.unit,
            "flag": result.flag.value,
        }


def _rejection(rejection: ItemRejection) -> dict[str, object]:
    out: dict[str, object] = {"reason": str(rejection.reason), "detail": rejection.detail}
    if rejection.station_id is not None:
        out["station_id"] = rejection.station_id
    if rejection.parameter is not None:
        out["parameter"] = rejection.parameter
    return out
