"""Group `training_data`: the chat-format JSONL files and their blocking checks."""

GROUP = "training_data"
