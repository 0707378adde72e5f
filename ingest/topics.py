"""Topic templates: `ecowatch/v1/{district}/{station_id}/{kind}` -> a subscription and tags.

Each `{name}` placeholder matches one topic level and becomes a tag, as Telegraf's topic parsing
does; literal levels must match exactly; a trailing `#` matches the rest. `station_id` and `mn`
placeholders name the station. Placeholder values are untrusted input: they must be non-empty,
printable and short, or the message is rejected as a bad topic. A placeholder that becomes a tag
takes only the values its subscription allows (`allowed`: a list or a pattern), so no publisher can
create unlimited series in the database; the registry bounds `station_id` and `mn`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]{0,31})\}$")
# Tag values travel into line protocol and SQL parameters: printable, no separators.
_SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f/+#]{1,64}$")


# The values a placeholder may take: a set of them, or a pattern the whole value must match.
Allowed = frozenset[str] | re.Pattern[str]


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    template: str
    levels: tuple[str, ...]
    allowed: Mapping[str, Allowed] = field(default_factory=dict)

    @classmethod
    def parse(cls, template: str, allowed: Mapping[str, Allowed] | None = None) -> TopicTemplate:
        levels = tuple(template.split("/"))
        if not template or any(level == "" for level in levels):
            raise ValueError(f"topic template {template!r} has an empty level")
        seen: set[str] = set()
        for index, level in enumerate(levels):
            if level == "#" and index != len(levels) - 1:
                raise ValueError("'#' may only end a topic template")
            match = _PLACEHOLDER.match(level)
            if match:
                if match.group(1) in seen:
                    raise ValueError(f"placeholder {level} appears twice")
                seen.add(match.group(1))
            elif "{" in level or "}" in level or level == "+":
                raise ValueError(f"level {level!r}: placeholders are whole levels like {{name}}")
        unknown = set(allowed or {}) - seen
        if unknown:
            raise ValueError(f"allowed values given for {sorted(unknown)}, not placeholders of {template!r}")
        return cls(template, levels, dict(allowed or {}))

    @property
    def subscription(self) -> str:
        """The MQTT filter to subscribe to."""
        return "/".join("+" if _PLACEHOLDER.match(level) else level for level in self.levels)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(m.group(1) for level in self.levels if (m := _PLACEHOLDER.match(level)))

    def match(self, topic: str) -> dict[str, str] | None:
        """Placeholder values of a topic, or None when the topic does not fit or a value is unsafe."""
        parts = topic.split("/")
        tags: dict[str, str] = {}
        for index, level in enumerate(self.levels):
            if level == "#":
                return tags
            if index >= len(parts):
                return None
            part = parts[index]
            placeholder = _PLACEHOLDER.match(level)
            if placeholder:
                if not _SAFE_VALUE.match(part):
                    return None
                tags[placeholder.group(1)] = part
            elif part != level:
                return None
        return tags if len(parts) == len(self.levels) else None

    def disallowed(self, tags: Mapping[str, str]) -> str | None:
        """Why a matched topic's placeholder values are refused (a value outside its set), or None."""
        for name, allowed in self.allowed.items():
            value = tags.get(name)
            if value is None:
                continue
            ok = value in allowed if isinstance(allowed, frozenset) else allowed.fullmatch(value) is not None
            if not ok:
                return f"topic level {{{name}}}={value!r:.70} is not an allowed value"
        return None
