"""callqa: recorded customer-service and sales calls → per-call quality records."""

__version__ = "0.1.0"
