"""emopulse.dashboard"""
