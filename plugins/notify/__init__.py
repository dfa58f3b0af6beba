"""Notifications: what happens in a run, sent through Apprise to chat, e-mail or a webhook."""
