"""The demo's test suite: copied into a temporary directory and run by `tapproxy demo`
as a real `pytest --tapproxy` session (so its node ids read `test_shop.py::…`)."""
