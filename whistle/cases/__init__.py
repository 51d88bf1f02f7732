"""What happens to a case. Takes a session, settings and keys; returns plain data; never imports Flask or people/."""
