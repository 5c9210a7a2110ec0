"""On-site tracking: the website tag's events, decoded, and what they build (visitors, sessions,
sources, baskets, attribution, abandonment)."""
