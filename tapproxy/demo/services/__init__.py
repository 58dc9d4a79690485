"""The demo shop's four services, each a program of its own (see tapproxy.demo)."""
