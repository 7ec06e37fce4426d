"""Floor 2: organisations' users, roles, API tokens, and who is looking (the viewer's tier)."""
