"""The `training_data` group: the training and validation files and their checks."""
