"""The public website: choose a location and a time, book, and manage the booking."""
