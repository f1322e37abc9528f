"""CRM record of every conversation: Rasa events -> redacted conversations and turns (issue 17)."""
