# The notebook harness (nbval plugin) applies to notebooks/ as well as tests/.
pytest_plugins = ["tests.nbharness"]
