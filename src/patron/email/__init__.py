"""Transactional email: templates, the outbox, and delivery over SMTP."""
