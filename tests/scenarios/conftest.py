# suite/ is the user's suite the scenario tests run inside pytest; services/ its programs.
collect_ignore = ["suite", "services"]
