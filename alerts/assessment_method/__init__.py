"""Period assessment of sections and regions by the 2011 surface-water assessment method.

地表水环境质量评价办法（试行） (环办〔2011〕22号), as bureaus apply it to monitoring data: sections are
judged on period values (daily, monthly, quarterly, annual, year to date), not single readings, and
regions on the shares of their sections. The rules are data: config/standards/assessment.yaml
(rules.py), beside GB 3838-2002 (config/standards/gb3838-2002.yaml); every rule the shared
reference marks UNVERIFIED is a key there with a documented default.

The flow, each step a pure function (no clock, no I/O) in its own module:

    results (station_id, time_ns, parameter, value, flag, below_dl) tuples, from any reader
      -> daily.py       daily values per station, item and local day: valid flags, below-DL half
                        rule, over-range (T) results kept apart, results-per-day threshold
      -> statistics.py  period statistics: month from days, quarter / year / ytd from months,
                        validity thresholds (period.py: 2026-11, 2026-Q3, 2026, ytd)
      -> values.py      reported value: "<DL", GB/T 8170 rounding, T lower bound, GB 3838 class
      -> section.py     section: class of the worst item, not assessable without a required item,
                        lake TP / separate TN / trophic.py (TLI), main pollutants vs class III,
                        items worse than the target, meets target, grade
      -> region.py      district / basin / river / overall: shares, compliance, grade, changes,
                        district ranking
      -> report.py      the report of a period against the previous one and last year; JSON
      -> table.py, render_html.py, render_xlsx.py, render_csv.py   the printed forms

At the edges: readings_csv.py (results from a CSV file) and report_cli.py (`ecowatch report`).
Speed: a month of 4-hourly data of the 9 basic items at 3 641 sections (5.9 M results) takes
seconds (bench/assessment.py).
"""
