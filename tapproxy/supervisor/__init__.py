"""The supervisor side: what runs beside the proxy and never imports mitmproxy."""
