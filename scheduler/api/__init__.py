"""The JSON API for the clinic's website and integrations."""
