"""emopulse.serving"""
