"""Group `support_tickets`: the second shipped task. Its ticket file, the DuckDB table loaded from it,
and (in `task/defs.yaml`) the FineTuningTask that routes tickets to departments."""

GROUP = "support_tickets"
