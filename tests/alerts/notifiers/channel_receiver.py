"""A receiver that plays all five channels as the services behave, for `FakeReceiver.responder`.

Per channel it enforces what the services document, on the test's fake clock:
    webhook       Standard Webhooks signature (HMAC-SHA256 of "id.timestamp.body", v1), timestamp
                  within 5 minutes (the spec's tolerance)
    alertmanager  a JSON list of alerts
    dingtalk      the signature (HMAC-SHA256 of "timestamp\\nsecret", timestamp within an hour),
                  20 000 bytes of markdown text, 20 requests per sliding minute per robot, and
                  past that errcode 130101 and every request refused for the penalty (600 s)
    wecom         4096 bytes of markdown content (else 40058), 20 requests per sliding minute per
                  robot, past that errcode 45009 and refusals for its penalty (60 s)
    slack         header text 150 characters, section text 3000, 50 blocks, text 40 000
Breaking a limit, sending within a penalty or before a Retry-After (counted from the answer) is
a *violation*, listed in `violations`; the services' answers follow. Event keys are read from
what each channel shows (the chat templates of these tests print `〔key〕`) and counted per
channel in arrival order, from every request the receiver processed (also when its answer was
then lost: `lose_answer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import Counter, defaultdict, deque
from typing import Any, Final

from alerts.events import AlertEvent
from tests.alerts.notifiers.fake_receiver import Answer, FakeClock, Recorded, make_event

KEY_MARK: Final = re.compile(r"〔([^〕]+)〕")
# Templates for the chat channels that show each event's key, as a reader could quote it.
CHAT_TEMPLATE: Final = {
    "title": "[{status_label}] {summary}",
    "text": "### [{status_label}] {summary} 〔{key}〕\n- 站点: {station_name} ({station_id})\n- 数值: {values}\n{link}",
    "digest_line": "- [{status_label}] {summary} · {values} 〔{key}〕",
}
SLACK_CHAT_TEMPLATE: Final = {
    **CHAT_TEMPLATE,
    "text": "*[{status_label}] {summary}* 〔{key}〕\n{values}\n{link}",
}
WEBHOOK_TOLERANCE_S: Final = 300.0  # Standard Webhooks: refuse timestamps more than 5 minutes off
DINGTALK_TOLERANCE_S: Final = 3600.0  # DingTalk: the timestamp may be at most an hour off
ROBOT_MESSAGES: Final = 20
ROBOT_WINDOW_S: Final = 60.0


class ChannelReceiver:
    """Responder for a `FakeReceiver` that serves every channel; see the module docstring."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        webhook_key: bytes,
        dingtalk_secret: str,
        dingtalk_penalty: float = 600.0,
        wecom_penalty: float = 60.0,
        latency: float = 0.0,
    ) -> None:
        self.clock = clock
        self.latency = latency  # fake seconds between a request's arrival and its answer
        self.keys: dict[str, list[str]] = defaultdict(list)
        self.violations: list[str] = []
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.down: set[str] = set()  # channels answering 503
        self.fail_requests: dict[str, set[int]] = defaultdict(set)  # 503 to these arrivals (1-based)
        self.lose_answer: set[str] = set()  # the next request is processed, its answer lost
        self._webhook_key = webhook_key
        self._dingtalk_secret = dingtalk_secret
        self._penalty_s = {"dingtalk": dingtalk_penalty, "wecom": wecom_penalty}
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._not_before: dict[str, float] = {}
        self._penalize: set[str] = set()
        self._throttle: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- scripting --------------------------------------------------------------------------------
    def penalize(self, channel: str) -> None:
        """The robot's next request gets its rate-limit answer and starts its penalty."""
        self._penalize.add(channel)

    def throttle(self, channel: str, retry_after: float) -> None:
        """The channel's next request gets 429 with this Retry-After, counted from the answer."""
        self._throttle[channel] = retry_after

    # --- reading ----------------------------------------------------------------------------------
    def duplicates(self, channel: str) -> dict[str, int]:
        return {k: n for k, n in Counter(self.keys[channel]).items() if n > 1}

    def out_of_order(self, channel: str) -> list[str]:
        """Keys that arrived after a later key of the same alert (keys are `<alert>:<seq>`)."""
        latest: dict[str, int] = {}
        late: list[str] = []
        for key in self.keys[channel]:
            alert, seq = key.rsplit(":", 1)
            if int(seq) < latest.get(alert, 0):
                late.append(key)
            latest[alert] = max(latest.get(alert, 0), int(seq))
        return late

    # --- answering --------------------------------------------------------------------------------
    def __call__(self, request: Recorded) -> Answer:
        with self._lock:
            now = self.clock().timestamp()
            channel, kind = self._channel(request)
            self.arrivals[channel].append(now)
            answer, keys = self._answer(request, channel, kind, now)
            if keys is not None:
                self.keys[channel].extend(keys)
            if self.latency:
                self.clock.advance(self.latency)
            answered = self.clock().timestamp()
            if answer.status == 429:
                self._not_before[channel] = answered + float(answer.headers["Retry-After"])
            if keys is not None and channel in self.lose_answer:
                self.lose_answer.discard(channel)
                return Answer(drop=True)
            return answer

    def _channel(self, request: Recorded) -> tuple[str, str]:
        if request.path.endswith("/robot/send"):
            return f"dingtalk:{request.query.get('access_token')}", "dingtalk"
        if request.path.endswith("/cgi-bin/webhook/send"):
            return f"wecom:{request.query.get('key')}", "wecom"
        if request.path.endswith("/api/v2/alerts"):
            return "alertmanager", "alertmanager"
        if request.path.startswith("/services/"):
            return f"slack:{request.path}", "slack"
        return f"webhook:{request.path}", "webhook"

    def _answer(
        self, request: Recorded, channel: str, kind: str, now: float
    ) -> tuple[Answer, list[str] | None]:
        """The service's answer, and the event keys it took (None: it took nothing)."""
        if now < self._not_before.get(channel, float("-inf")):
            self._violation(channel, f"request {self._not_before[channel] - now:.1f} s before it was allowed")
            if kind in self._penalty_s:
                return _errcode(kind), None
            return Answer(429, b"rate_limited", {"Retry-After": str(self._not_before[channel] - now)}), None
        if channel in self.down or len(self.arrivals[channel]) in self.fail_requests[channel]:
            return Answer(503, b"down for maintenance"), None
        if channel in self._throttle:
            return Answer(429, b"rate_limited", {"Retry-After": f"{self._throttle.pop(channel):g}"}), None
        if kind in self._penalty_s:
            penalty = self._robot_window(channel, kind, now)
            if penalty is not None:
                return penalty, None
        try:
            return Answer.json(200, {"errcode": 0, "errmsg": "ok"}), getattr(self, f"_{kind}")(
                request, channel, now
            )
        except _Refused as refused:
            self._violation(channel, refused.why)
            return refused.answer, None

    def _robot_window(self, channel: str, kind: str, now: float) -> Answer | None:
        window = self._windows[channel]
        while window and window[0] <= now - ROBOT_WINDOW_S:
            window.popleft()
        window.append(now)
        forced = channel in self._penalize
        if forced or len(window) > ROBOT_MESSAGES:
            self._penalize.discard(channel)
            if not forced:
                self._violation(channel, f"{len(window)} requests within {ROBOT_WINDOW_S:g} s")
            self._not_before[channel] = now + self.latency + self._penalty_s[kind]
            return _errcode(kind)
        return None

    def _violation(self, channel: str, why: str) -> None:
        self.violations.append(f"{channel}: {why} at {self.clock().isoformat()}")

    # --- the channels -----------------------------------------------------------------------------
    def _webhook(self, request: Recorded, _channel: str, now: float) -> list[str]:
        msg_id, stamp, signatures = (
            request.header(h) or "" for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
        )
        content = f"{msg_id}.{stamp}.".encode() + request.body
        expected = base64.b64encode(hmac.new(self._webhook_key, content, hashlib.sha256).digest()).decode()
        if not any(
            version == "v1" and hmac.compare_digest(sig, expected)
            for version, _, sig in (s.partition(",") for s in signatures.split(" "))
        ):
            raise _Refused("bad webhook signature", Answer(401, b"bad signature"))
        if abs(now - float(stamp)) > WEBHOOK_TOLERANCE_S:
            raise _Refused("stale webhook timestamp", Answer(401, b"stale"))
        return list(request.event_keys())

    def _alertmanager(self, request: Recorded, channel: str, _now: float) -> list[str]:
        alerts = request.json()
        if not isinstance(alerts, list):
            raise _Refused("not a list of alerts", Answer(400, b"bad request"))
        keys = [a["annotations"]["notification_key"] for a in alerts]
        if not (request.header("Idempotency-Key") or "").startswith("resend-"):
            return keys
        # A re-send of what fires: no transition, but never an older one than the last arrived.
        latest = {k.rsplit(":", 1)[0]: k for k in self.keys[channel]}
        for key in keys:
            alert = key.rsplit(":", 1)[0]
            if alert not in latest or int(key.rsplit(":", 1)[1]) < int(latest[alert].rsplit(":", 1)[1]):
                self._violation(channel, f"re-sent {key} after {latest.get(alert)}")
        return []

    def _dingtalk(self, request: Recorded, _channel: str, now: float) -> list[str]:
        stamp = request.query.get("timestamp", "0")
        digest = hmac.new(
            self._dingtalk_secret.encode(), f"{stamp}\n{self._dingtalk_secret}".encode(), hashlib.sha256
        ).digest()
        if request.query.get("sign") != base64.b64encode(digest).decode():
            raise _Refused(
                "bad dingtalk signature", Answer.json(200, {"errcode": 310000, "errmsg": "sign not match"})
            )
        if abs(now - int(stamp) / 1000) > DINGTALK_TOLERANCE_S:
            raise _Refused(
                "stale dingtalk timestamp", Answer.json(200, {"errcode": 310000, "errmsg": "timestamp"})
            )
        text = request.json()["markdown"]["text"]
        if len(text.encode()) > 20_000:
            # A stand-in code: the robot refuses, and no retry can change it.
            raise _Refused(
                "dingtalk text past 20000 bytes", Answer.json(200, {"errcode": 460101, "errmsg": "too long"})
            )
        return KEY_MARK.findall(text)

    def _wecom(self, request: Recorded, _channel: str, _now: float) -> list[str]:
        content = request.json()["markdown"]["content"]
        if len(content.encode()) > 4096:
            raise _Refused(
                "wecom content past 4096 bytes",
                Answer.json(200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}),
            )
        return KEY_MARK.findall(content)

    def _slack(self, request: Recorded, _channel: str, _now: float) -> list[str]:
        body = request.json()
        blocks: list[dict[str, Any]] = body.get("blocks", [])
        if len(body["text"]) > 40_000:
            raise _Refused("slack text past 40000 characters", Answer(400, b"msg_too_long"))
        if len(blocks) > 50:
            raise _Refused(f"{len(blocks)} slack blocks", Answer(400, b"invalid_blocks"))
        for block in blocks:
            limit = 150 if block["type"] == "header" else 3000
            if not block["text"]["text"] or len(block["text"]["text"]) > limit:
                raise _Refused(
                    f"slack {block['type']} text of {len(block['text']['text'])}",
                    Answer(400, b"invalid_blocks"),
                )
        shown = [k for b in blocks if b["type"] == "section" for k in KEY_MARK.findall(b["text"]["text"])]
        if shown != KEY_MARK.findall(body["text"]):
            raise _Refused("slack blocks and text disagree", Answer(400, b"invalid_blocks"))
        return shown


class _Refused(Exception):
    def __init__(self, why: str, answer: Answer) -> None:
        super().__init__(why)
        self.why, self.answer = why, answer


def _errcode(kind: str) -> Answer:
    """The robot's rate-limit answer."""
    if kind == "dingtalk":
        return Answer.json(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
    return Answer.json(200, {"errcode": 45009, "errmsg": "api freq out of limit"})


# --- one receiver of each channel, all at one ChannelReceiver ----------------------------------
WEBHOOK_KEY: Final = b"0123456789abcdef0123456789abcdef"
DINGTALK_TOKEN: Final = "dingtalk-robot-token-0123456789"
DINGTALK_SECRET: Final = "SECdingtalk-signing-secret-0123456789"
WECOM_KEY: Final = "wecom-robot-key-0123456789"
SLACK_PATH: Final = "/services/T0/B0/slack-secret-part-0123"
# receiver name → the channel id ChannelReceiver counts it under
CHANNELS: Final = {
    "platform": "webhook:/hook/platform",
    "am": "alertmanager",
    "duty": f"dingtalk:{DINGTALK_TOKEN}",
    "basin": f"wecom:{WECOM_KEY}",
    "ops": f"slack:{SLACK_PATH}",
}


def every_channel(url: str, **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Receiver configs of all five channels at `url`, each updated with `overrides[name]`."""
    receivers: list[dict[str, Any]] = [
        {
            "type": "webhook",
            "name": "platform",
            "url": f"{url}/hook/platform",
            "secret": "whsec_" + base64.b64encode(WEBHOOK_KEY).decode(),
        },
        # Re-sends would repeat keys on purpose; these tests count transitions, so re-send rarely.
        {"type": "alertmanager", "name": "am", "url": url, "resend_interval": "PT12H"},
        {
            "type": "dingtalk",
            "name": "duty",
            "access_token": DINGTALK_TOKEN,
            "secret": DINGTALK_SECRET,
            "base_url": f"{url}/robot/send",
            "template": CHAT_TEMPLATE,
        },
        {
            "type": "wecom",
            "name": "basin",
            "webhook_key": WECOM_KEY,
            "base_url": f"{url}/cgi-bin/webhook/send",
            "template": CHAT_TEMPLATE,
        },
        {"type": "slack", "name": "ops", "url": f"{url}{SLACK_PATH}", "template": SLACK_CHAT_TEMPLATE},
    ]
    return [{**r, **overrides.get(r["name"], {})} for r in receivers]


def transitions(alerts: int, rounds: int, start: int = 1) -> list[AlertEvent]:
    """Round-major transitions of alerts a0…: seq `start`, `start`+1, … alternately firing and resolved."""
    return [
        make_event(n, seq=seq, status="firing" if seq % 2 else "resolved")
        for seq in range(start, start + rounds)
        for n in range(alerts)
    ]
