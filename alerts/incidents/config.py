"""How incidents are joined, forecast and closed: the tracker's settings and their reasons.

Every default is a domain judgement, stated beside it; the daemon will read these from an
`incidents:` section of ecowatch.yaml (ingest.app.settings), the offline CLI uses the defaults.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from config.types import StrictModel


class IncidentConfig(StrictModel):
    """Tolerances, quiet time, decay and forecast horizon of the incident tracker."""

    tolerance_fraction: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Relative slack on a travel time when joining stations: configured speeds are mean "
        "values and real ones vary about ±50 % with stage, so 0.5.",
    )
    tolerance_min: timedelta = Field(
        timedelta(hours=1),
        ge=timedelta(0),
        description="Absolute slack on a travel time, for short reaches where a fraction is minutes: 1 h.",
    )
    quiet_time: timedelta = Field(
        timedelta(hours=12),
        gt=timedelta(0),
        description="An incident receding this long (and past the next section's arrival window) "
        "closes: three 4-hourly reports of a national automatic station.",
    )
    decay_per_h: dict[str, float] = Field(
        default_factory=dict,
        description="First-order decay rate k (1/h) per item code, C = C0 exp(-k t). Empty by default: "
        "decay (NH3-N nitrification, COD degradation: ~0.1-0.3/day) is slow against travel times of "
        "hours to days, and a forecast that ignores it errs on the side of warning.",
    )
    default_decay_per_h: float = Field(0.0, ge=0, description="k (1/h) of items not in decay_per_h.")
    calibrate: bool = Field(
        True,
        description="Once seen at two sections on one path, scale forecast travel times by the observed "
        "over the expected travel time between them (the river's actual speed today).",
    )
    calibration_bounds: tuple[float, float] = Field(
        (0.5, 2.0),
        description="Clamp of that scale: beyond it the difference is sampling (4-hourly reports), "
        "not speed.",
    )
    forecast_horizon: timedelta = Field(
        timedelta(days=3),
        gt=timedelta(0),
        description="Forecast no further: past ~3 days an advection-only arrival is off by more than the "
        "tolerance, and dispersion (not modelled) has spread the plume.",
    )
    stale_after: timedelta = Field(
        timedelta(days=3),
        gt=timedelta(0),
        description="An incident with no exceedance this long closes even without clean readings (a "
        "station that stopped reporting must not hold it open): at least the forecast horizon.",
    )
    max_closed: int = Field(
        200, ge=0, description="Closed incidents kept in the tracker's state (for the API); older ones go."
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> IncidentConfig:
        low, high = self.calibration_bounds
        if not 0 < low <= 1 <= high:
            raise ValueError("calibration_bounds must be (low, high) with 0 < low <= 1 <= high")
        for code, rate in self.decay_per_h.items():
            if rate < 0:
                raise ValueError(f"decay_per_h.{code}: a decay rate cannot be negative")
        return self

    def decay(self, item: str) -> float:
        """k (1/h) of `item`."""
        return self.decay_per_h.get(item, self.default_decay_per_h)

    def tolerance_s(self, travel_time_s: float) -> float:
        """Slack (s) either side of an expected arrival after `travel_time_s` of travel."""
        return max(self.tolerance_min.total_seconds(), self.tolerance_fraction * abs(travel_time_s))
