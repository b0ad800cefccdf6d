"""What the gateway tells about itself: Prometheus metrics and structured logs."""
