"""HJ 212-2017 (and HJ/T 212-2005) data uploads: one packet per message, to raw readings.

    ##0160QN=20261125080000000;ST=21;CN=2011;PW=123456;MN=50010300000001;Flag=4;
    CP=&&DataTime=20261125080000;w01001-Rtd=7.62,w01001-Flag=N;w01009-Rtd=8.10,w01009-Flag=N&&4100\\r\\n
    (one line: the break after `Flag=4;` is for reading only)

The packet is checked whole (length, CRC-16, syntax: see `packet`); a packet that fails is rejected
whole with the reason of its first fault. Data commands, the field each reads and the kind of
value each carries are listed in `config/hj212/codes.yaml`: real-time data (CN 2011) yields each
pollutant's `Rtd`; minute (2051), hourly (2061) and daily (2031) data yield the `Avg` of the period
starting at DataTime (`Min`, `Max`, `Cou` and `EFlag` are not read). Any other command carries no
readings and is rejected as UNSUPPORTED_COMMAND; the TCP gateway answers those before decoding.

Each reading: `ts` = the pollutant's `SampleTime` where it has one (a sampled analyser's result,
repeated in every real-time packet until the next sample, so repeats are one point), else
DataTime, naive, with `assume_tz` = the configured zone (station local time); `kind` = the
command's kind (realtime, minute, hourly, daily); `mn` = MN and no station id (validation resolves
MN through the registry); `flag` = `code-Flag` (N when absent; HJ/T 212-2005's P, power failure,
reads as D, fault). A value below the detection limit, written as the limit and `L` (`0.01L`,
HJ/T 91-2002), gives `value` = the limit with `below_dl`; negative values pass as sent (validation
judges them). A packet the gateway noted with `EcowatchTimeShift=<seconds>` (its logger's clock
was off) has those seconds added to its times, and its readings are `time_corrected`. PW stays
on the `Packet`: checking it needs the registry, which decoders never see. Pollutant codes map to
our parameters and units through the code table; an unknown code is passed through as sent
(`w99999`), so validation dead-letters it with the code in the reason. Per pollutant, a value that
is not a number, an unknown flag letter, a bad SampleTime, a missing value field or a repeated
field becomes an `ItemRejection` while the other pollutants go on. A split packet (Flag bit D) is
decoded on its own: each part must carry its DataTime. The topic is not read.

`parse_packet`, `build_response`, `build_request` and `encode_packet` are the lower-level API of
the TCP gateway; `encode_data_packet` writes uploads for the simulator and tests (canonical
values in, each written in its code's unit).

Example:
    crc: modbus              # also accept the Modbus CRC-16 (some loggers; or modbus_swapped, or both)
    timezone: Asia/Shanghai  # zone of DataTime
    max_segment_length: 4096 # HJ 212-2017 allows 1024; some loggers send longer segments
"""

from ingest.decoders.hj212.crc import CrcChoice, CrcVariant, crc16_hj212, crc16_modbus, crc16_modbus_swapped
from ingest.decoders.hj212.decoder import DEFAULT_TIMEZONE, HJ212Config, HJ212Decoder, encode_data_packet
from ingest.decoders.hj212.packet import (
    MAX_SEGMENT_LENGTH,
    Packet,
    ResponseCommand,
    annotate_time_shift,
    build_request,
    build_response,
    encode_packet,
    frame,
    parse_packet,
)

__all__ = [
    "DEFAULT_TIMEZONE",
    "MAX_SEGMENT_LENGTH",
    "CrcChoice",
    "CrcVariant",
    "HJ212Config",
    "HJ212Decoder",
    "Packet",
    "ResponseCommand",
    "annotate_time_shift",
    "build_request",
    "build_response",
    "crc16_hj212",
    "crc16_modbus",
    "crc16_modbus_swapped",
    "encode_data_packet",
    "encode_packet",
    "frame",
    "parse_packet",
]
