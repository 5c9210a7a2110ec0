"""The record model below ingest and profiles: the documents records become and their merge rules
(``documents``), how each record type is stored (``storage``), what an order gives its profile
(``stats``), and the worker's round: its context and the registry of the kinds of queue row
(``rounds``). It imports no package above the store."""
