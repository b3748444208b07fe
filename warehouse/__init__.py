"""emopulse.warehouse"""
