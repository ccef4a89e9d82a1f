"""Vector fields and learned layers."""
