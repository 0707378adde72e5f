"""The Flux queries of the Grafana dashboard, written from the standard, the registry and the catalogue.

ecowatch stores one point per reading: measurement `water_quality` or `hydrology`, tags
`station_id`, `district`, `basin`, `river` (+ `kind`), one float field per parameter code and a
string field `<code>_flag` with its HJ 212 data flag (ingest/sinks/__init__.py). The queries
classify in Flux with the single-factor method of alerts/classify.py, generated from the data:

- each item alone: `max` items meet the best class whose limit the value does not exceed, `min`
  items (DO) the best class whose limit the value reaches, `range` items (pH) class I inside the
  range and none outside; meeting no class V limit is worse than V. TP of lakes and reservoirs
  uses its own limits;
- a station's class is the worst class of its assessed items (which items are assessed, on rivers
  and on lakes, is data too); only readings whose flag counts for compliance (N) take part;
- primary pollutants: the assessed items worse than the station's target class, by Chinese name.

Station names, coordinates, target classes and water bodies are not in InfluxDB: they travel in the
query as a Flux dictionary built from the registry. Class indexes: 0 no data, 1 = I ... 6 = 劣V.
Grafana substitutes `${station}` (the dashboard variable) before InfluxDB sees a query; strings
from the registry are escaped so that neither Flux nor Grafana interpolates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from config.parameters import Parameter
from config.registry import Registry, WaterClass
from config.standards import Assessment, Item, Standard, WaterBody
from ingest.model import COMPLIANCE_FLAGS, DataFlag

BUCKET: Final = "water"
# What a station outside the registry is assessed against: class III, the 2011 method's reference.
DEFAULT_TARGET: Final = WaterClass.III
CLASSES: Final = tuple(WaterClass)
WORSE_THAN_V: Final = len(CLASSES)


def class_index(water_class: WaterClass) -> int:
    return water_class.rank + 1


def flux_number(value: float) -> str:
    """A Flux float literal: Flux has no exponent notation, so write fixed-point digits."""
    text = f"{value:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def flux_string(value: str) -> str:
    """A Flux string literal that neither Flux (`${...}`) nor Grafana (`$name`) interpolates."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("$", "\\x24") + '"'


def class_function(code: str, item: Item) -> str:
    """`class_<code> = (v, lake) => <class index>`: the item's single-factor class."""
    if item.kind == "range":
        low, high = item.low, item.high
        assert low is not None
        assert high is not None
        body = f"if v >= {flux_number(low)} and v <= {flux_number(high)} then 1 else {WORSE_THAN_V}"
    else:
        assert item.limits is not None
        body = _ladder(item, item.limits)
        if item.limits_lake is not None:
            body = f"if lake then ({_ladder(item, item.limits_lake)}) else ({body})"
    return f"class_{code} = (v, lake) => {body}"


def _ladder(item: Item, limits: Sequence[float]) -> str:
    op = "<=" if item.kind == "max" else ">="
    steps = [f"if v {op} {flux_number(limit)} then {i}" for i, limit in enumerate(limits, start=1)]
    return " else ".join(steps) + f" else {WORSE_THAN_V}"


def _worst(names: Sequence[str]) -> str:
    expression = names[-1] if names else "0"
    for name in reversed(names[:-1]):
        expression = f"worst(a: {name}, b: {expression})"
    return expression


def _dict(entries: Sequence[str]) -> str:
    if not entries:
        return "[:]"
    return "[\n" + "".join(f"    {entry},\n" for entry in entries) + "]"


class FluxBuilder:
    def __init__(self, standard: Standard, registry: Registry, catalogue: Mapping[str, Parameter]) -> None:
        self.standard = standard
        self.registry = registry
        self.catalogue = catalogue
        classified = [c for c, item in standard.items.items() if c in catalogue and item.kind != "none"]
        self.river = self._assessed(classified, "river")
        self.lake = self._assessed(classified, "lake")
        self.codes = [c for c in classified if c in self.river or c in self.lake]

    def _assessed(self, codes: Sequence[str], water_body: WaterBody) -> list[str]:
        items = self.standard.items
        return [c for c in codes if items[c].assessment_for(water_body) is Assessment.ASSESSED]

    # --- building blocks --------------------------------------------------------------------------
    def _prelude(self) -> str:
        stations = [
            f"{flux_string(s.id)}: {{name: {flux_string(s.name)}, district: {flux_string(s.district)}, "
            f"river: {flux_string(s.river)}, lat: {flux_number(s.lat)}, lon: {flux_number(s.lon)}, "
            f"target: {class_index(s.target_class)}, lake: {'false' if s.water_body == 'river' else 'true'}}}"
            for s in self.registry.values()
        ]
        unknown = (
            '{name: "", district: "", river: "", lat: 0.0, lon: 0.0, '
            f"target: {class_index(DEFAULT_TARGET)}, lake: false}}"
        )
        lines = [
            'import "dict"',
            'import "strings"',
            "",
            f"stations = {_dict(stations)}",
            f"unknown = {unknown}",
            f"roman = {_dict([f'{class_index(c)}: {flux_string(c.value)}' for c in CLASSES])}",
            "worst = (a, b) => if a > b then a else b",
            *(class_function(c, self.standard.items[c]) for c in self.codes),
            "",
            "",
        ]
        return "\n".join(lines)

    @staticmethod
    def _source(codes: Sequence[str], station: bool = False, flags: bool = False) -> str:
        """Water-quality readings of `codes` (with their flags) in the dashboard's time range."""
        where = ' and r.station_id == "${station}"' if station else ""
        fields = f"^({'|'.join(codes)}){'(_flag)?' if flags else ''}$"
        return (
            f'from(bucket: "{BUCKET}")\n'
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
            f'  |> filter(fn: (r) => r._measurement == "water_quality"{where} and r._field =~ /{fields}/)\n'
        )

    def _counts(self, code: str) -> str:
        flags = " or ".join(f"r.{code}_flag == {flux_string(f.value)}" for f in sorted(COMPLIANCE_FLAGS))
        return f"(exists r.{code}) and ((not (exists r.{code}_flag)) or {flags})"

    def _pollutant(self, code: str) -> str:
        guard = f"c_{code} > s.target"
        if code not in self.lake:
            guard = f"not s.lake and {guard}"
        elif code not in self.river:
            guard = f"s.lake and {guard}"
        return f'(if {guard} then {flux_string("、" + self.standard.items[code].name_zh)} else "")'

    def _classified_rows(self, station: bool, latest: bool) -> str:
        """One row per reading time: its class (`cls`), the station's `target` and pollutants (`over`)."""
        per_code = "".join(
            f"            c_{c} = if {self._counts(c)}\n"
            f"                then class_{c}(v: float(v: r.{c}), lake: s.lake) else 0\n"
            for c in self.codes
        )
        river, lake = [f"c_{c}" for c in self.river], [f"c_{c}" for c in self.lake]
        cls = _worst(river) if river == lake else f"if s.lake then {_worst(lake)} else {_worst(river)}"
        over = "\n                + ".join(self._pollutant(c) for c in self.codes) or '""'
        return (
            self._prelude()
            + self._source(self.codes, station=station, flags=True)
            + ("  |> last()\n" if latest else "")
            # Values (float) and flags (string) can share a table, which pivot needs, only as strings.
            + "  |> map(fn: (r) => ({r with _value: string(v: r._value)}))\n"
            '  |> group(columns: ["station_id"])\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> map(\n"
            "        fn: (r) => {\n"
            "            s = dict.get(dict: stations, key: r.station_id, default: unknown)\n"
            f"{per_code}"
            "            return {\n"
            "                station_id: r.station_id,\n"
            "                _time: r._time,\n"
            f"                cls: {cls},\n"
            "                target: s.target,\n"
            f"                over: {over},\n"
            "            }\n"
            "        },\n"
            "    )\n"
        )

    # --- queries ----------------------------------------------------------------------------------
    def station_state(self) -> str:
        """One row per station: the class of its latest readings against its target, for the map."""
        return self._classified_rows(station=False, latest=True) + (
            "  |> reduce(\n"
            '        identity: {cls: 0, over: "", last: 1970-01-01T00:00:00Z},\n'
            "        fn: (r, accumulator) => ({\n"
            "            cls: worst(a: r.cls, b: accumulator.cls),\n"
            "            over: accumulator.over + r.over,\n"
            "            last: if r._time > accumulator.last then r._time else accumulator.last,\n"
            "        }),\n"
            "    )\n"
            "  |> map(\n"
            "        fn: (r) => {\n"
            "            s = dict.get(dict: stations, key: r.station_id, default: unknown)\n"
            "            return {\n"
            "                station_id: r.station_id,\n"
            '                name: if s.name == "" then r.station_id else s.name,\n'
            "                district: s.district,\n"
            "                river: s.river,\n"
            "                lat: s.lat,\n"
            "                lon: s.lon,\n"
            "                class: r.cls,\n"
            "                target: s.target,\n"
            "                meets_target: r.cls <= s.target,\n"
            '                pollutants: strings.trimPrefix(v: r.over, prefix: "、"),\n'
            "                last_reading: r.last,\n"
            "            }\n"
            "        },\n"
            "    )\n"
            "  |> group()\n"
        )

    def compliance(self, by_district: bool) -> str:
        """Percentage of the stations with a class that meet their target, overall or per district."""
        tail = (
            "  |> filter(fn: (r) => r.class > 0)\n"
            "  |> map(fn: (r) => ({r with compliance: if r.meets_target then 100.0 else 0.0}))\n"
        )
        if by_district:
            tail += '  |> group(columns: ["district"])\n  |> mean(column: "compliance")\n  |> group()\n'
        else:
            tail += '  |> mean(column: "compliance")\n'
        return self.station_state() + tail

    def latest_values(self, codes: Sequence[str]) -> str:
        """One row per station: the latest value of each of `codes`, with the station's name."""
        names = [f"{flux_string(s.id)}: {flux_string(s.name)}" for s in self.registry.values()]
        return (
            f'import "dict"\n\nnames = {_dict(names)}\n\n' + self._source(codes) + "  |> last()\n"
            '  |> group(columns: ["station_id"])\n'
            '  |> pivot(rowKey: ["station_id"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> map(fn: (r) => ({r with\n"
            "        name: dict.get(dict: names, key: r.station_id, default: r.station_id),\n"
            "    }))\n"
            "  |> group()\n"
        )

    @staticmethod
    def trend(measurement: str, code: str) -> str:
        """One parameter of the station in the `station` variable, averaged to Grafana's resolution."""
        return (
            f'from(bucket: "{BUCKET}")\n'
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
            f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r.station_id == "${{station}}" '
            f'and r._field == "{code}")\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n"
            '  |> keep(columns: ["_time", "_value", "_field"])\n'
        )

    def worse_than_target(self) -> str:
        """Annotations: the first reading of each run in which the station is worse than its target."""
        return self._classified_rows(station=True, latest=False) + (
            '  |> sort(columns: ["_time"])\n'
            '  |> stateCount(fn: (r) => r.cls > r.target, column: "run")\n'
            "  |> filter(fn: (r) => r.run == 1)\n"
            "  |> map(\n"
            "        fn: (r) => ({\n"
            "            _time: r._time,\n"
            '            text: "class " + dict.get(dict: roman, key: r.cls, default: "?")\n'
            '                + ", target " + dict.get(dict: roman, key: r.target, default: "?")\n'
            '                + ": " + strings.trimPrefix(v: r.over, prefix: "、"),\n'
            "        }),\n"
            "    )\n"
            "  |> group()\n"
        )

    @staticmethod
    def flags() -> str:
        """Annotations: the start of each run of a data flag that does not count for compliance."""
        meaning = _dict(
            [f"{flux_string(f.value)}: {flux_string(f.name.lower().replace('_', ' '))}" for f in DataFlag]
        )
        counting = " or ".join(f"r._value == {flux_string(f.value)}" for f in sorted(COMPLIANCE_FLAGS))
        return (
            f'import "dict"\nimport "strings"\n\nmeaning = {meaning}\n\n'
            f'from(bucket: "{BUCKET}")\n'
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
            "  |> filter(fn: (r) => r._measurement =~ /^(water_quality|hydrology)$/\n"
            '        and r.station_id == "${station}" and r._field =~ /_flag$/)\n'
            f'  |> stateCount(fn: (r) => not ({counting}), column: "run")\n'
            "  |> filter(fn: (r) => r.run == 1)\n"
            "  |> map(\n"
            "        fn: (r) => ({\n"
            "            _time: r._time,\n"
            '            text: strings.trimSuffix(v: r._field, suffix: "_flag") + ": flag " + r._value\n'
            '                + " (" + dict.get(dict: meaning, key: r._value, default: "unknown") + ")",\n'
            "        }),\n"
            "    )\n"
            "  |> group()\n"
        )
