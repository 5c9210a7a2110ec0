"""Ingest: validating pushes, the durable import queue, and the worker that applies it."""
