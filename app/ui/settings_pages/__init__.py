"""The settings dialog's pages (one module per page) and their background jobs."""
