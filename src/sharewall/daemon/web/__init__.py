"""A small read-only admin page on the daemon's Unix socket (reach it with the CLI's socket or an SSH
tunnel; SO_PEERCRED keeps changes to root and group sharewall, so the page only shows)."""
