"""fixgw, the process and its operator surface: wiring (process/), the operator API and CLI (admin/, cli/), the
journal (journal/), drop-copy delivery (dropcopy/), order state on disk (state/), leadership (cluster/), schedules
(scheduling/), security (security/), observability (observability/) and the configuration (config.py)."""
