"""Topic templates: `ecowatch/v1/{district}/{station_id}/{kind}` -> a subscription and tags.

Each `{name}` placeholder matches one topic level and becomes a tag, as Telegraf's topic parsing
does; literal levels must match exactly; a trailing `#` matches the rest. `station_id` and `mn`
placeholders name the station. Placeholder values are untrusted input: they must be non-empty,
printable and short, or the message is rejected as a bad topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]{0,31})\}$")
# Tag values travel into line protocol and SQL parameters: printable, no separators.
_SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f/+#]{1,64}$")


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    template: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> TopicTemplate:
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
        return cls(template, levels)

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
