"""Patron: an open-source customer data platform that speaks the Ometria Data API v2."""

__version__ = "0.1.0"
