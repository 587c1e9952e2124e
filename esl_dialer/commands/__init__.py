"""ESL-side `dialer` commands (sim, worker, ivr, simulate); each module exposes COMMANDS."""
