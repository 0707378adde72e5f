"""ecowatch alerting: GB 3838-2002 classification, rules, alert state and notifications."""
