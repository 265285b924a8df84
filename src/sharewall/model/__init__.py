"""Pure model of what the user wants. No I/O anywhere below this package."""
