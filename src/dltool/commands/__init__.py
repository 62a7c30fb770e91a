"""One module per subcommand: parse, call the library layer, render. No torch at import."""
