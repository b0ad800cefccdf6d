"""Time and change: end-of-day and trading-day jobs on a scheduler, and `fixgw sessions reload` planned live."""
