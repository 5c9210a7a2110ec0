"""The single customer view: identity resolution, profiles, merges, lists and consent."""
