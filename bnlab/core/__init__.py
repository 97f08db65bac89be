"""Low-level pieces shared by every side of the package: quiet framework imports, the course's
files and nbgrader invocation, code digests and the reference cache. Imports nothing from
`bnlab.checks`, `bnlab.grading` or `bnlab.book`."""
