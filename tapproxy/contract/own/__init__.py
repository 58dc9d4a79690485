"""tapproxy's own expectation file (`tapproxy: 1`): its schema, matchers and checks."""
