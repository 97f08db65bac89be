"""What the book's chapters use: the Sphinx extension, the data sets and the training helpers.
Depends on `bnlab.core` only."""
