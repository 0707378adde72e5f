"""Loggers' clocks: each logger's clock error, its correction, the shift of its readings (no I/O).

HJ 212-2017, §6 (command table) and the interaction examples of its annex C:
- 1013 (现场机时间校准请求): the logger asks to have its clock set, a notification with `Flag=5`
  (`CP=&&PolId=w01018&&` or `CP=&&&&`). The platform answers 9013, then sets the clock with 1012.
- 1012 (设置现场机时间): the platform sets the clock, `CP=&&[PolId=...;]SystemTime=YYYYMMDDhhmmss&&`
  in the station's local time, Flag bit A set; the logger answers 9011 `QnRtn=1`, then 9012
  `ExeRtn=1`, both with the 1012's QN. Without PolId it is the data logger's own clock.
- 1011 (提取现场机时间): only the platform asks (`CP=&&[PolId=...]&&`); the logger answers 9011, then
  uploads its time as a 1011 with the request's QN and `SystemTime` (Flag without bit A), then 9012.
  The gateway reads that upload; it sends 1011 itself only with `clock_query_interval` set.
The logger's answers to the gateway's own requests (9011, 9012, the 1011 upload, matched by MN and
QN) are the gateway's business: read, logged and counted, never handed off (they carry no readings
and would only be dead letters).

Measuring: a packet's QN (`YYYYMMDDhhmmsszzz`) is the logger's clock when it built the packet;
without a QN (HJ/T 212-2005) the DataTime of real-time data (CN 2011) is; a 1011 upload's
SystemTime is the clock itself. Answers (9xxx) echo the QN of a request and tell nothing. The
error is that time minus the platform's at receipt (positive: the logger is ahead). Past
`clock_tolerance`:
- the clock is set (1012 with the platform's time), at most once per `clock_correction_interval`
  per MN, so a logger that ignores it, or a backlog of old packets, is not flooded;
- the packet's readings are shifted by minus the error, in whole seconds, and marked time-corrected
  (the gateway's `EcowatchTimeShift` note, read by the decoder), when the logger is ahead (no delay
  in transit makes a clock look ahead) or the packet is real-time data (loggers keep minute, hourly
  and daily data for resending after an outage, not real-time data, so a late real-time packet is
  a slow clock, not a backlog). A late minute, hourly or daily packet keeps its times: it may be a
  backlog resent as it was built. While a logger stays off by about the same error, its readings
  keep the shift they got first, so a sampled result repeated in every packet stays one point.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from ingest.decoders.hj212 import Packet
from ingest.decoders.hj212.packet import MAX_TIME_SHIFT_S, build_request

GET_TIME_CN: Final = "1011"  # 提取现场机时间: asked by the platform, answered with the logger's time
SET_TIME_CN: Final = "1012"  # 设置现场机时间
TIME_REQUEST_CN: Final = "1013"  # 现场机时间校准请求: the logger asks to be set
REALTIME_CN: Final = "2011"
_RESPONSE_FAMILY: Final = "9"  # 9xxx: answers, whose QN is the request's
_REQUEST_RESPONSE_CN: Final = "9011"
_EXECUTION_RESULT_CN: Final = "9012"
_QN_LENGTH: Final = 17  # YYYYMMDDhhmmsszzz
_TIME_LENGTH: Final = 14  # YYYYMMDDhhmmss
# PolId names an instrument by its pollutant code (`w01018`); a longer one is not echoed.
_MAX_POL_ID: Final = 24
# Loggers and requests remembered at most: beyond these the oldest are forgotten (the registry bounds
# MNs, but `unknown_mn: accept` lets any MN in). A request unanswered for this long is dropped.
_MAX_LOGGERS: Final = 100_000
_MAX_PENDING: Final = 10_000
_PENDING_TTL_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class ClockNote:
    """What one packet told about a logger's clock, for the gateway's logs and metrics."""

    error_s: float | None = None  # the logger's clock minus the platform's, when the packet told it
    shift_s: int = 0  # seconds added to the packet's times
    correction: str | None = None  # why a 1012 goes out: `request` (the logger's 1013) or `drift`
    logger_time: str | None = None  # SystemTime of a 1011 upload
    answer: tuple[str, str, str] | None = None  # (our request's CN, the answer's CN, QnRtn or ExeRtn)


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The clock's part in handling one packet: a shift, requests to send after its answers, or
    `consumed` (an answer to the gateway's own request: not handed off)."""

    shift_s: int = 0
    requests: tuple[bytes, ...] = ()
    consumed: bool = False
    note: ClockNote | None = None


@dataclass(slots=True)
class _Logger:
    shift_s: int = 0  # the shift of the current episode of a clock off by more than the tolerance
    corrected_at: float | None = None  # monotonic time of the last 1012 sent unasked
    queried_at: float | None = None  # monotonic time of the last 1011 sent


class ClockKeeper:
    """Watches every logger's clock for one gateway; used from its event loop only."""

    def __init__(
        self,
        *,
        tolerance: timedelta,
        correction_interval: timedelta,
        query_interval: timedelta | None,
        correct: bool,
        shift_readings: bool,
        data_commands: frozenset[str],
    ) -> None:
        self._tolerance_s = tolerance.total_seconds()
        self._correction_interval_s = correction_interval.total_seconds()
        self._query_interval_s = None if query_interval is None else query_interval.total_seconds()
        self._correct = correct
        self._shift_readings = shift_readings
        self._data_commands = data_commands
        self._loggers: OrderedDict[str, _Logger] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._last_qn = 0

    def handle(self, packet: Packet, zone: str, now: datetime, mono: float) -> ClockStep:
        """The clock's part for a packet from an authenticated logger; `now` is aware, `mono` monotonic."""
        if packet.cn in (_REQUEST_RESPONSE_CN, _EXECUTION_RESULT_CN):
            return self._answer(packet, mono)
        if packet.cn.startswith(_RESPONSE_FAMILY):
            return ClockStep()  # other answers echo a QN that is not the logger's clock
        if packet.cn == GET_TIME_CN and packet.field("SystemTime") is not None:
            return self._time_upload(packet, zone, now, mono)
        state = self._logger(packet.mn)
        error = _error_s(_logger_time(packet), zone, now)
        requests: list[bytes] = []
        correction: str | None = None
        shift = 0
        if packet.cn == TIME_REQUEST_CN:
            if self._correct:  # asked for: always answered, and it counts as this interval's correction
                state.corrected_at = mono
                correction = "request"
                requests.append(self._set_time(packet, zone, now, mono, packet.field("PolId")))
        elif error is not None and abs(error) > self._tolerance_s:
            if packet.cn in self._data_commands and self._may_shift(packet, error):
                if abs(error + state.shift_s) > self._tolerance_s:  # a new episode, or a new error
                    state.shift_s = -round(error)
                shift = state.shift_s
            if self._correct and self._due(state.corrected_at, self._correction_interval_s, mono):
                state.corrected_at = mono
                correction = "drift"
                requests.append(self._set_time(packet, zone, now, mono, None))
        elif error is not None:
            state.shift_s = 0  # back within the tolerance: the episode is over
        if self._query_interval_s is not None and self._due(state.queried_at, self._query_interval_s, mono):
            state.queried_at = mono
            requests.append(self._request(packet, GET_TIME_CN, {}, zone=zone, now=now, mono=mono))
        note = ClockNote(error, shift, correction) if error is not None or correction else None
        return ClockStep(shift, tuple(requests), note=note)

    # --- the logger's answers ------------------------------------------------------------------------
    def _answer(self, packet: Packet, mono: float) -> ClockStep:
        self._expire(mono)
        key = (packet.mn, packet.qn or "")
        pending = self._pending.get(key)
        if pending is None:
            return ClockStep()  # not ours: handed off like any other packet
        request_cn = pending[0]
        rtn = packet.field("QnRtn" if packet.cn == _REQUEST_RESPONSE_CN else "ExeRtn") or ""
        if packet.cn == _EXECUTION_RESULT_CN or rtn != "1":
            del self._pending[key]  # the request is over: executed, or refused before it started
        return ClockStep(consumed=True, note=ClockNote(answer=(request_cn, packet.cn, rtn)))

    def _time_upload(self, packet: Packet, zone: str, now: datetime, mono: float) -> ClockStep:
        self._expire(mono)
        text = packet.field("SystemTime") or ""
        error = _error_s(_parse(text, _TIME_LENGTH), zone, now)
        state = self._logger(packet.mn)
        requests: tuple[bytes, ...] = ()
        correction: str | None = None
        off = error is not None and abs(error) > self._tolerance_s
        if off and self._correct and self._due(state.corrected_at, self._correction_interval_s, mono):
            state.corrected_at = mono
            correction = "drift"
            requests = (self._set_time(packet, zone, now, mono, packet.field("PolId")),)
        consumed = (packet.mn, packet.qn or "") in self._pending
        return ClockStep(
            requests=requests,
            consumed=consumed,
            note=ClockNote(error, correction=correction, logger_time=text[:_TIME_LENGTH]),
        )

    # --- requests to the logger ----------------------------------------------------------------------
    def _set_time(self, packet: Packet, zone: str, now: datetime, mono: float, pol_id: str | None) -> bytes:
        fields: dict[str, str] = {}
        if pol_id is not None and 0 < len(pol_id) <= _MAX_POL_ID:
            fields["PolId"] = pol_id
        fields["SystemTime"] = now.astimezone(ZoneInfo(zone)).strftime("%Y%m%d%H%M%S")
        return self._request(packet, SET_TIME_CN, fields, zone=zone, now=now, mono=mono)

    def _request(
        self, packet: Packet, cn: str, fields: dict[str, str], *, zone: str, now: datetime, mono: float
    ) -> bytes:
        qn = self._next_qn(now.astimezone(ZoneInfo(zone)))
        self._pending[(packet.mn, qn)] = (cn, mono)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        return build_request(packet, cn, qn, fields)

    def _next_qn(self, local: datetime) -> str:
        """QN of a request: the platform's time to the ms, kept unique when two fall in one ms."""
        qn = int(local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}")
        self._last_qn = max(qn, self._last_qn + 1)
        return str(self._last_qn)

    # --- state ---------------------------------------------------------------------------------------
    def _may_shift(self, packet: Packet, error: float) -> bool:
        if not self._shift_readings or abs(error) > MAX_TIME_SHIFT_S:
            return False
        return error > 0 or packet.cn == REALTIME_CN

    @staticmethod
    def _due(last: float | None, interval_s: float, mono: float) -> bool:
        return last is None or mono - last >= interval_s

    def _logger(self, mn: str) -> _Logger:
        state = self._loggers.get(mn)
        if state is None:
            state = self._loggers[mn] = _Logger()
            if len(self._loggers) > _MAX_LOGGERS:
                self._loggers.popitem(last=False)
        return state

    def _expire(self, mono: float) -> None:
        while self._pending:
            (_, (_, sent)) = next(iter(self._pending.items()))
            if mono - sent < _PENDING_TTL_S:
                return
            self._pending.popitem(last=False)


def _logger_time(packet: Packet) -> datetime | None:
    """The logger's clock as the packet shows it: its QN, else the DataTime of real-time data."""
    if packet.qn is not None and len(packet.qn) == _QN_LENGTH:
        parsed = _parse(packet.qn, _QN_LENGTH)
        if parsed is not None:
            return parsed
    if packet.cn == REALTIME_CN:
        return _parse(packet.field("DataTime") or "", _TIME_LENGTH)
    return None


def _parse(text: str, length: int) -> datetime | None:
    """`YYYYMMDDhhmmss[zzz]` as a naive time, or None."""
    if len(text) != length or not text.isdigit():
        return None
    try:
        parsed = datetime.strptime(text[:_TIME_LENGTH], "%Y%m%d%H%M%S")  # naive: station local time
    except ValueError:
        return None
    return parsed.replace(microsecond=int(text[_TIME_LENGTH:] or 0) * 1000)


def _error_s(logger_time: datetime | None, zone: str, now: datetime) -> float | None:
    """The logger's clock minus `now`, in seconds, its naive time taken in `zone`."""
    if logger_time is None:
        return None
    try:
        return (logger_time.replace(tzinfo=ZoneInfo(zone)) - now).total_seconds()
    except OverflowError:
        return None
