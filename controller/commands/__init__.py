"""Controller-side `dialer` commands; each module exposes COMMANDS."""
