"""sharewall: Internet Connection Sharing and Internet Connection Firewall for Linux."""

__version__ = "0.1.0"
