"""One module per CLI command. Each holds a plain function with Annotated Typer parameters that
parses, calls the Python API, and renders the result; `tagger.cli` registers them."""
