"""Helpers shared by the tests (no tests here): toy data, chat files, Goodreads records, chains, backends."""
