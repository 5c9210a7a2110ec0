"""Dynamic segments: a rule over the customer view (:mod:`.rules`), compiled to SQL (:mod:`.evaluate`),
with its members and their entries and exits kept (:mod:`.members`)."""
