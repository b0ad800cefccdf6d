"""The order vocabulary: commands, events and reports (model.py), orders and child orders with their state
machine as a table (states.py), the parent's rules over its children (lifecycle.py), and the shape every order must have (validation.py). Pure; it imports nothing
else of the domain, and everything else of it stands on it."""
