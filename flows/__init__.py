"""emopulse.flows"""
