"""Notifications: consumers of the event stream that tell people about deployments (Slack,
signed webhooks, email, GitHub deployment statuses). They never block or fail a deployment: the
stream's consumer only writes what is to be sent (``plan``), and a background sender delivers it
with retries (``host``). See docs/notifications.md."""
