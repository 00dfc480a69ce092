"""Group `fine_tuning`: uploads, the provider job, its evaluation and the production model."""

GROUP = "fine_tuning"
