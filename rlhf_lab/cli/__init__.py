"""The command line: parsing, --help, the dry run, one-line error wording and the from-swift translation."""
