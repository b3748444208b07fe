"""emopulse.training"""
