"""Leadership of an active/standby cluster: one lease per cluster in PostgreSQL that names the active instance,
with a fencing token every write carries so a deposed active's writes are refused (lease.py, fence.py, keeper.py)."""
