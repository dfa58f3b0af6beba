pytest_plugins = ["tradepipe.testing"]
