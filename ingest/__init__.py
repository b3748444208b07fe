"""emopulse.ingest"""
