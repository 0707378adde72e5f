"""The `template` of a chat receiver: its templates, language and zone, checked when loading.

See `alerts.templates` for the fields and the defaults.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import Field, model_validator

from config.types import StrictModel, TimeZoneName

Language = Literal["zh", "en"]
EVENT_FIELDS: Final = frozenset(
    {
        "key", "alert_id", "rule", "kind", "status", "status_label", "severity", "severity_label",
        "change_label", "headline", "summary", "description", "station_id", "station_name", "district",
        "basin", "river", "water_body", "place", "parameter", "parameter_name", "water_class",
        "target_class", "primary_pollutants", "values", "starts_at", "ends_at", "event_at", "details",
        "link", "reminder",
    }
)  # fmt: skip
DIGEST_FIELDS: Final = frozenset({"count", "firing", "resolved"})
PART_FIELDS: Final = frozenset({"part", "parts"})
DETAIL_FIELDS: Final = frozenset({"label", "value"})
# China Standard Time: the national network's stations keep it, and the duty rooms read it.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
# Every template of one channel's default set, per language.
TemplateSet = Mapping[Language, Mapping[str, str]]
MARKDOWN_TEMPLATES: Final[TemplateSet] = {
    "zh": {
        "title": "【{headline}】{summary}",
        "text": "### 【{headline}】{summary}\n{details}\n{link}",
        "detail_line": "- {label}：{value}",
        "digest_title": "共 {count} 条告警通知",
        "digest_header": "### 共 {count} 条告警通知：{firing} 条告警中，{resolved} 条已恢复",
        "digest_line": "- 【{headline}】{summary} · {place} · {values} · {event_at}",
        "part_note": "（第 {part}/{parts} 部分）",
    },
    "en": {
        "title": "[{headline}] {summary}{reminder}",
        "text": "### [{headline}] {summary}{reminder}\n{details}\n{link}",
        "detail_line": "- {label}: {value}",
        "digest_title": "{count} alert notifications",
        "digest_header": "### {count} alert notifications ({firing} firing, {resolved} resolved)",
        "digest_line": "- [{headline}] {summary} · {place} · {values} · {event_at}",
        "part_note": " (part {part}/{parts})",
    },
}
_ZH: Final = MARKDOWN_TEMPLATES["zh"]


class MessageTemplate(StrictModel):
    """The templates of one receiver; each left out is the default of `language` (`DEFAULTS`)."""

    # The default set of the channel, per language; a channel with other markup has its own subclass.
    DEFAULTS: ClassVar[TemplateSet] = MARKDOWN_TEMPLATES

    language: Language = Field(
        "zh",
        description="zh: Chinese wording and default templates; en: the English ones (what ecowatch "
        "sent before). Templates given are used as written.",
    )
    timezone: TimeZoneName = Field(
        DEFAULT_TIMEZONE, description="Zone of the times shown, unless the event names its station's own."
    )
    title: str = Field(
        _ZH["title"], description="Title of one event's message (DingTalk's title, the first line elsewhere)."
    )
    text: str = Field(
        _ZH["text"],
        description="Body of one event's message (markdown for DingTalk and WeCom, mrkdwn for Slack).",
    )
    detail_line: str = Field(
        _ZH["detail_line"], description="One line of the `details` field: {label} and {value}."
    )
    digest_title: str = Field(
        _ZH["digest_title"], description="Title of a digest (several events in one message)."
    )
    digest_header: str = Field(_ZH["digest_header"], description="First lines of a digest's body.")
    digest_line: str = Field(_ZH["digest_line"], description="One line per event of a digest.")
    part_note: str = Field(
        _ZH["part_note"],
        description="Added to the title and the first line of each part of a message split to fit "
        "the channel's size limit.",
    )

    @model_validator(mode="before")
    @classmethod
    def _language_defaults(cls, data: Any) -> Any:
        """Templates left out are the defaults of the language (and the channel)."""
        if not isinstance(data, Mapping):
            return data
        language = data.get("language", "zh")
        defaults = cls.DEFAULTS.get(language) if language in ("zh", "en") else None
        return data if defaults is None else {**defaults, **data}  # an unknown language fails below

    @model_validator(mode="after")
    def _known_fields(self) -> Self:
        for name in ("title", "text", "digest_line"):
            _check_fields(name, getattr(self, name), EVENT_FIELDS)
        for name in ("digest_title", "digest_header"):
            _check_fields(name, getattr(self, name), DIGEST_FIELDS)
        _check_fields("detail_line", self.detail_line, DETAIL_FIELDS)
        _check_fields("part_note", self.part_note, PART_FIELDS)
        return self


def _check_fields(name: str, template: str, allowed: frozenset[str]) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _literal, field, _spec, _conversion in parsed:
        if field is not None and field not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValueError(f"{name}: unknown field {{{field}}}; known fields: {known}")
    try:  # a trial render catches what parsing lets through: nested fields, numeric format specs
        template.format_map(dict.fromkeys(allowed, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"{name}: cannot be rendered: {exc!r}") from None


DEFAULT_TEMPLATE: Final = MessageTemplate()
