"""A Bilibili-compatible local server for demos and tests."""
