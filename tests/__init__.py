"""The test suite; laid out like the `fine_tuning` package it tests."""
