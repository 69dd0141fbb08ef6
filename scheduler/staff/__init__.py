"""The schedulers' workspace: calendars, availability, appointments, texts, audit."""
