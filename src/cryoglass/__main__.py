from cryoglass.cli.main import run

run()
