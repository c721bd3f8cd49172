from materializer.cli import entry

entry()
