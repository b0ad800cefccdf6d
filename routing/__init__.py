"""Routing decisions: where an order goes (router.py: strategies, fees, the split) from the venues' quotes
(quotes.py). Pure; the order desk (desk/) asks it and places what it decides."""
