"""Text messages: the outbox and its dispatcher, and Twilio's webhooks."""
