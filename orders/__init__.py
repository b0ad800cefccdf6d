"""The order vocabulary: enumerations (model.py), the commands the desk takes (commands.py), the actions it
returns (actions.py), the decisions it keeps (records.py), orders and child orders with their state machine as a
table (states.py), the parent's rules over its children (lifecycle.py), and the shape every order must have
(validation.py). Pure; it imports nothing else of the domain, and everything else of it stands on it."""
