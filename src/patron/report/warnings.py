"""Rules (to come)."""
