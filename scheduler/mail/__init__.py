"""Email to patients: built from admins' templates, queued in the one outbox beside texts,
sent by the same dispatcher through ``smtplib``, with a one-click unsubscribe."""
