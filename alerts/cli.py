"""`ecowatch alerts list|ack|silence|unsilence`: the operator API of a running daemon, from a shell.

    ecowatch alerts list --station cq-jl-jinzi
    firing   critical compliance_drop     cq-jl-jinzi      -      since 2026-07-01T08:01:15+08:00  ...
    ecowatch alerts ack 3f9c0e2a1b4d5c6e --by 李工 --comment "crew on the way"
    ecowatch alerts silence --match station_id=cq-jl-jinzi --match rule=~compliance_.* \
        --for PT4H --by 李工 --reason "planned dredging"
    ecowatch alerts unsilence 8e1f...

Each subcommand is one request to the daemon's HTTP API (`--url`, default http://127.0.0.1:8080;
`--token` or $ECOWATCH_API_TOKEN when the API requires one). `--json` prints the API's answer
as is. Exit 0 on success, 1 when the daemon refuses (the reason on stderr) or cannot be reached.
Times are shown in `--timezone` (default Asia/Shanghai).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

DEFAULT_URL: Final = "http://127.0.0.1:8080"
TIMEOUT_S: Final = 10.0
_DURATION: Final[TypeAdapter[timedelta]] = TypeAdapter(timedelta)


class _Failed(Exception):
    pass


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add list, ack, silence and unsilence to the subparsers of the `alerts` command (`func` set)."""
    listing = _command(subparsers, "list", "list active alerts (or --state all|resolved|...)", _list)
    listing.add_argument(
        "--state", default="active", help="pending, firing, active (default), resolved, ok, all"
    )
    for label in ("station", "rule", "district", "basin", "severity"):
        listing.add_argument(f"--{label}", help=f"only alerts with this {label}")

    ack = _command(subparsers, "ack", "acknowledge an alert: no more reminders until it resolves", _ack)
    ack.add_argument("alert_id", help="the alert's id (from `ecowatch alerts list`)")
    ack.add_argument("--by", required=True, help="who acknowledges")
    ack.add_argument("--comment", help="why, or what is being done")

    silence = _command(subparsers, "silence", "silence alerts matching labels for a while", _silence)
    silence.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="LABEL=VALUE",
        help="label matcher, repeatable; LABEL=~REGEX matches the whole value against a regex",
    )
    until = silence.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", help="length, ISO 8601 (PT4H) or seconds")
    until.add_argument("--until", help="end, ISO 8601 with a zone offset")
    silence.add_argument("--by", required=True, help="who silences")
    silence.add_argument("--reason", required=True, help="why")

    unsilence = _command(subparsers, "unsilence", "end a silence now", _unsilence)
    unsilence.add_argument("silence_id", help="the silence's id")


def _command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], None],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
    )
    parser.add_argument(
        "--url", default=os.environ.get("ECOWATCH_API_URL", DEFAULT_URL), help="daemon HTTP address"
    )
    parser.add_argument("--token", default=os.environ.get("ECOWATCH_API_TOKEN"), help="API bearer token")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    parser.add_argument("--timezone", default="Asia/Shanghai", help="zone of the times shown")
    parser.set_defaults(func=lambda args: _run(name, handler, args))
    return parser


def _run(name: str, handler: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    try:
        handler(args)
    except _Failed as exc:
        print(f"alerts {name}: {exc}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> None:
    query = {"state": args.state, "limit": "10000"}
    for option in ("station", "rule", "district", "basin", "severity"):
        value = getattr(args, option)
        if value:
            query["station_id" if option == "station" else option] = value
    body = _call(args, "GET", "/api/v1/alerts?" + urllib.parse.urlencode(query))
    if args.json:
        _print_json(body)
        return
    zone = ZoneInfo(args.timezone)
    for alert in body["alerts"]:
        subject = alert["station_id"] or next(
            (alert["labels"][k] for k in ("district", "basin", "river") if k in alert["labels"]), "-"
        )
        since = _local(alert["starts_at"], zone)
        ack = " (acked)" if alert["acknowledged"] else ""
        print(
            f"{alert['state']:<8} {alert['severity'] or '-':<8} {alert['rule']:<22} {subject:<18} "
            f"{alert['parameter'] or '-':<6} since {since}  {alert['alert_id']}{ack}  {alert['summary']}"
        )
    print(f"{body['count']} alert(s)")


def _ack(args: argparse.Namespace) -> None:
    body = _call(
        args,
        "POST",
        "/api/v1/alerts/ack",
        {"alert_id": args.alert_id, "by": args.by, "comment": args.comment},
    )
    if args.json:
        _print_json(body)
    else:
        print(f"acknowledged {args.alert_id} ({body['alert']['rule']}) by {args.by}")


def _silence(args: argparse.Namespace) -> None:
    matchers: dict[str, Any] = {}
    for item in args.match:
        label, sep, value = item.partition("=")
        if not sep or not label:
            raise _Failed(f"--match {item!r} is not LABEL=VALUE")
        matchers[label] = {"regex": value[1:]} if value.startswith("~") else value
    if args.duration is not None:
        try:
            ends_at = datetime.now().astimezone() + _DURATION.validate_python(args.duration)
        except ValidationError:
            raise _Failed(f"--for {args.duration!r} is not a duration (PT4H, 3600)") from None
        end = ends_at.isoformat()
    else:
        end = args.until
    request = {"matchers": matchers, "ends_at": end, "by": args.by, "reason": args.reason}
    body = _call(args, "POST", "/api/v1/silences", request)
    if args.json:
        _print_json(body)
    else:
        print(f"silence {body['id']} until {_local(body['silence']['ends_at'], ZoneInfo(args.timezone))}")


def _unsilence(args: argparse.Namespace) -> None:
    body = _call(args, "DELETE", "/api/v1/silences?" + urllib.parse.urlencode({"id": args.silence_id}))
    if args.json:
        _print_json(body)
    else:
        print(f"silence {args.silence_id} ended")


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method)  # noqa: S310 - operator-given URL
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - operator-given URL
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise _Failed(f"HTTP {exc.code}: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Failed(f"cannot reach {args.url}: {exc}") from None


def _local(iso: str | None, zone: ZoneInfo) -> str:
    return "-" if iso is None else datetime.fromisoformat(iso).astimezone(zone).isoformat(timespec="seconds")


def _print_json(body: Any) -> None:
    print(json.dumps(body, ensure_ascii=False, indent=2))
