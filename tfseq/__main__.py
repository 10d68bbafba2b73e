from tfseq.cli.main import entry

entry()
