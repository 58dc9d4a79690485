"""Contracts drafted from recorded traffic: the own format, OpenAPI 3.1 and Pact v4."""
