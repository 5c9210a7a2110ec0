"""Outbound webhooks: an account's endpoints (``endpoints``), the events written for them in the
transaction of the change they tell of (``outbox``), their delivery by the worker, signed as Standard
Webhooks has it (``delivery``), and where an endpoint may be reached (``network``). docs/webhooks.md."""
