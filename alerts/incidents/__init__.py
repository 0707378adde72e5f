"""Incidents: one pollution event followed along the rivers, from its origin reach downstream.

An exceedance at one section is an incident's first station; the same item exceeding at a
section up- or downstream when the water would have carried it there joins it. The incident
knows its stations in flow order (first exceedance, peak), the reach where the pollutant most
likely entered and when, the expected arrival and concentration at every station and intake
below, and its status (open → confirmed → receding → closed). Pure and offline: values in,
values and events out; the daemon feeds it from the alert engine and stores its state.

- `config.py`: `IncidentConfig`, the tolerances, quiet time, decay and horizon, with reasons.
- `model.py`: `Incident`, its stations, `Origin`, `ForecastPoint`, `IncidentEvent`; JSON forms.
- `tracker.py`: `IncidentTracker.observe(station, item, time_ns, value, limit)` / `tick(now_ns)`.
- `origin.py`: the origin reach and entry time. `forecast.py`: arrivals downstream.
- `cli.py`: `ecowatch incidents --readings FILE.csv --registry FILE.yaml --format json`.

The model and its limits:

- Advection only: the plume's front moves at the reach speeds of the network (config/network.py:
  configured reaches, a station's velocity readings, the river's speed, a default), and arrives
  where and when that speed carries it. No dispersion: a real plume spreads, its front arrives
  earlier and its peak later and lower than forecast; the tolerance (±50 %, at least 1 h, plus
  the stations' report intervals) absorbs part of that.
- Dilution only at confluences, by the tributary's share of the mean flow (`flow_share`),
  with complete mixing; none where a share is not configured (the forecast then errs high).
  Today's flows are not read: at low water a tributary's share differs.
- First-order decay per item, C = C0 exp(−k t), k per hour (`decay_per_h`); none by default.
- Arrivals are first exceedances, seen at report times: a 4-hourly station sees a plume up to
  4 h after it arrived, so ETAs and entry times are as coarse as the reports.
- One plume per item and path: two releases of one item close together in space and time merge
  into one incident; the same item far outside the travel-time window is a second incident, as
  is an event on a river that is not on the same flow path.
- Items with an upper limit only (`max` items); DO and pH deviations are not followed.
"""
